"""What a visual-depth cut saves: analytic FLOPs and KV-cache bytes (``flops``), measured latency and peak memory
(``timing``)."""

from visdepth.compute.flops import DecoderShape, cut_costs, decode_flops, kv_cache_bytes, prefill_flops
from visdepth.compute.timing import Timing, measure, peak_memory

__all__ = [
    "DecoderShape",
    "Timing",
    "cut_costs",
    "decode_flops",
    "kv_cache_bytes",
    "measure",
    "peak_memory",
    "prefill_flops",
]
