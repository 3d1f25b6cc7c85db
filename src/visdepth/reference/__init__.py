"""The reference VLM that ships with visdepth: ``visdepth/shapes-vlm``, trained here on the ``shapes`` benchmark.

``recipe`` builds the architecture, tokenizer and processor; ``train`` retrains it from scratch from its seed;
``evaluate`` scores it (and its image ablations) on the held-out split. The trained weights live in the
``shapes_vlm`` folder next to this file, saved with ``save_pretrained``: ``visdepth.load("visdepth/shapes-vlm")``
or plain ``AutoModelForImageTextToText.from_pretrained(<folder>)`` load them. See MODEL_CARD.md.
"""

from pathlib import Path

MODEL_NAME = "visdepth/shapes-vlm"
MODEL_DIR = Path(__file__).resolve().parent / "shapes_vlm"
SEED = 0
