"""ChartQA relaxed accuracy: a numeric answer may be off by a relative tolerance, any other must match."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from visdepth.metrics.output.answers import _as_list

_NUMBER_RE = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?$", re.IGNORECASE)
_THOUSANDS_RE = re.compile(r"^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def parse_number(text: str) -> float | None:
    """The number a short answer states, or ``None``.

    Accepts ``12``, ``-3.5``, ``1e3``, ``1,234.5`` (thousands separators), a leading ``$`` and a trailing
    ``%`` (kept as the same number: ChartQA labels carry no unit while models often add one) and a final
    period. Anything else (``12 apples``, ``nan``) is not a number.
    """
    t = str(text).strip().rstrip(".").strip()
    t = t.removeprefix("$").removesuffix("%").strip()
    if _THOUSANDS_RE.match(t):
        t = t.replace(",", "")
    if not _NUMBER_RE.match(t):
        return None
    value = float(t)
    return value if math.isfinite(value) else None


def relaxed_accuracy(prediction: str, answers: str | Iterable[str], *, tolerance: float = 0.05) -> float:
    """ChartQA relaxed accuracy [Masry2022]_: numbers may be off by ``tolerance`` relative error.

    For each reference: when both it and the prediction are numbers (:func:`parse_number`), the prediction is
    right if ``|pred - ref| <= tolerance * |ref|`` (the border counts as right; a zero reference needs a zero
    prediction); otherwise the two must match exactly, ignoring case, surrounding whitespace and a final
    period. The best reference counts. Unlike some re-implementations, ``45%`` is read as 45, not 0.45.

    References
    ----------
    .. [Masry2022] A. Masry, D. X. Long, J. Q. Tan, S. Joty, E. Hoque, "ChartQA: A Benchmark for Question
       Answering about Charts with Visual and Logical Reasoning", Findings of ACL 2022, sec. 5.1 (following
       Methani et al., PlotQA, WACV 2020).
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    pred_num = parse_number(prediction)
    pred_text = str(prediction).strip().rstrip(".").strip().lower()
    for ref in _as_list(answers):
        ref_num = parse_number(ref)
        if ref_num is not None and pred_num is not None:
            # 1e-12 absorbs the rounding of decimal borders such as 0.3 vs 0.315
            if abs(pred_num - ref_num) <= tolerance * abs(ref_num) * (1 + 1e-12):
                return 1.0
        elif pred_text == str(ref).strip().rstrip(".").strip().lower():
            return 1.0
    return 0.0
