"""Representation metrics on torch tensors: matrix entropy, intrinsic dimension, curvature, similarity.

Every function takes token matrices (one group at one layer) of any float dtype and device, computes in
float64, and returns a Python float (or, for ``depth_curvature``, a float64 tensor indexed by layer). The
``*_choices`` helpers return the options used, for recording in result files.
"""

from visdepth.metrics.curvature import depth_curvature, sequence_curvature
from visdepth.metrics.entropy import entropy_choices, matrix_entropy, skean_entropy, skean_entropy_choices
from visdepth.metrics.intrinsic_dim import intrinsic_dimension, intrinsic_dimension_choices
from visdepth.metrics.similarity import linear_cka, mean_cosine

__all__ = [
    "depth_curvature",
    "entropy_choices",
    "intrinsic_dimension",
    "intrinsic_dimension_choices",
    "linear_cka",
    "matrix_entropy",
    "mean_cosine",
    "sequence_curvature",
    "skean_entropy",
    "skean_entropy_choices",
]
