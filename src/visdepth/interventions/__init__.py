"""Interventions on the language-model decoder: capture its states, truncate visual depth, substitute states.

``capture`` records the residual stream; ``truncate`` keeps image tokens for the first ``cut`` blocks only (mask or
drop mode, RQ3) or stops their processing there (``modes``: freeze, skip_attn, skip_mlp, no_img2img);
``contribution`` scores each block's updates at image positions (ShortV); ``substitute`` continues from a hybrid of two depths' states (RQ2); ``sweep`` gives next-token
logits at every cut depth for about the price of one pass. ``hooks`` holds what they share.
"""

from visdepth.interventions.capture import capture_states, record_states
from visdepth.interventions.contribution import layer_contribution
from visdepth.interventions.hooks import Generation, TruncationCache, greedy_generate, prefill_kwargs
from visdepth.interventions.modes import ACCESS_MODES, PROCESS_MODES, parse_modes, validate_mode
from visdepth.interventions.substitute import (
    SPLICE_SCOPE,
    capture_prefill_states,
    hybrid_states,
    substituted_generate,
    substituted_logits,
)
from visdepth.interventions.sweep import CutSweep, sweep_cut_logits
from visdepth.interventions.truncate import (
    MODES,
    truncate_visual_depth,
    truncated_generate,
    truncated_logits,
    validate_cut,
)

__all__ = [
    "ACCESS_MODES",
    "MODES",
    "PROCESS_MODES",
    "SPLICE_SCOPE",
    "CutSweep",
    "Generation",
    "TruncationCache",
    "capture_prefill_states",
    "capture_states",
    "greedy_generate",
    "hybrid_states",
    "layer_contribution",
    "parse_modes",
    "prefill_kwargs",
    "record_states",
    "substituted_generate",
    "substituted_logits",
    "sweep_cut_logits",
    "truncate_visual_depth",
    "truncated_generate",
    "truncated_logits",
    "validate_cut",
    "validate_mode",
]
