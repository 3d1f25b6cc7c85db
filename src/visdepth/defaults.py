"""Built-in defaults every command falls back to: a model and data that need no download.

The default model is the reference VLM trained by this project on its own ``shapes`` benchmark (see
MODEL_CARD.md): a random tiny model would give numbers that mean nothing.
"""

DEFAULT_MODEL = "visdepth/shapes-vlm"
DEFAULT_DATASET_NAME = "shapes"

__all__ = ["DEFAULT_DATASET_NAME", "DEFAULT_MODEL"]
