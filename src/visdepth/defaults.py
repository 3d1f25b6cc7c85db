"""Built-in defaults every command falls back to: a model and data that need no download."""

from visdepth.data.builtin import DEFAULT_DATASET as DEFAULT_DATASET_NAME

# A tiny random-weight LLaVA until the reference model trained by this project ships: it exercises the whole
# pipeline offline, but its numbers describe an untrained network, not a VLM.
DEFAULT_MODEL = "tiny:llava"

__all__ = ["DEFAULT_DATASET_NAME", "DEFAULT_MODEL"]
