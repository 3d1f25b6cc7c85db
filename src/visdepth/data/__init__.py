"""Data for the experiments: samples, JSONL manifests, built-in images and named data sets.

``get_dataset("photos")`` is the usual entry point; ``get_dataset("my.jsonl")`` reads a manifest.
"""

from visdepth.data.builtin import (
    DATASETS,
    DEFAULT_DATASET,
    DatasetSpec,
    available_datasets,
    get_dataset,
    list_datasets,
    register_dataset,
)
from visdepth.data.images import (
    check_builtin_ref,
    image_sources,
    is_builtin_ref,
    load_image,
    register_image_source,
    to_rgb,
)
from visdepth.data.manifest import load_manifest, write_manifest
from visdepth.data.sample import TASK_GROUPS, TASK_KINDS, Sample, TaskKind, load_images

# registers the built-in ``shapes`` data set and its ``shapes:`` image source (after the modules it uses)
from visdepth.data import shapes  # noqa: E402, F401  isort: skip

__all__ = [
    "DATASETS",
    "DEFAULT_DATASET",
    "TASK_GROUPS",
    "TASK_KINDS",
    "DatasetSpec",
    "Sample",
    "TaskKind",
    "available_datasets",
    "check_builtin_ref",
    "get_dataset",
    "image_sources",
    "is_builtin_ref",
    "list_datasets",
    "load_image",
    "load_images",
    "load_manifest",
    "register_dataset",
    "register_image_source",
    "to_rgb",
    "write_manifest",
]
