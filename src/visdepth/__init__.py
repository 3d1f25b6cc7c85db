"""visdepth: how deep into the language model do image tokens need to go?

``visdepth.load(model)`` gives a handle over any supported Hugging Face VLM; ``visdepth.experiments`` holds one
module per research question of the study; ``visdepth.metrics`` the representation and output measures.
"""

from visdepth.models import load

__all__ = ["load"]
