"""Matrix (Renyi) entropy of a token group's representation at one layer (RQ1, "how many directions are used").

``matrix_entropy`` is the measure of the study (centre, L2-normalise rows, trace-normalised Gram spectrum).
``skean_entropy`` reproduces the "prompt entropy" of Skean et al. 2025 as their released code computes it, so
results can be compared with that paper. ``entropy_choices`` / ``skean_entropy_choices`` return the options
as a dict for result files.
All spectra are computed in float64; entropies are in nats.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

from visdepth.errors import ConfigError
from visdepth.metrics._checks import as_float64_matrix

Normalization = Literal["raw", "log_n", "log_d", "log_min", "log_min_nd"]
NORMALIZATIONS: tuple[str, ...] = ("raw", "log_n", "log_d", "log_min", "log_min_nd")

# A row whose norm is below this fraction of the largest input row norm is treated as exactly zero: after
# centring, rounding leaves ~1e-16 relative noise in rows that should vanish, and normalising that noise to
# unit length would invent directions.
_ZERO_ROW_RTOL = 1e-12

_SKEAN_REFERENCE = (
    "Skean et al. 2025, 'Layer by Layer: Uncovering Hidden Representations in Language Models' (ICML), "
    "prompt entropy; choices as in the authors' code github.com/OFSkean/information_flow "
    "(normalize() + compute_entropy(); repitl.matrixAlphaEntropy)"
)


def _check_alpha(alpha: float) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise ConfigError(f"entropy alpha must be a number > 0 (or inf), got {alpha!r}.") from None
    if math.isnan(a) or a <= 0:
        raise ConfigError(f"entropy alpha must be > 0 (1 = Shannon, inf = min-entropy), got {alpha!r}.")
    return a


def _check_normalize(normalize: str) -> str:
    if normalize not in NORMALIZATIONS:
        raise ConfigError(f"entropy normalize must be one of {', '.join(NORMALIZATIONS)}; got {normalize!r}.")
    return normalize


def _center_and_normalize_rows(Z: torch.Tensor, center: bool, row_normalize: bool) -> torch.Tensor:
    scale = torch.linalg.vector_norm(Z, dim=1).max()
    if center:
        Z = Z - Z.mean(dim=0, keepdim=True)
    norms = torch.linalg.vector_norm(Z, dim=1, keepdim=True)
    is_zero = norms <= _ZERO_ROW_RTOL * scale
    if row_normalize:
        Z = torch.where(is_zero, torch.zeros_like(Z), Z / torch.where(is_zero, torch.ones_like(norms), norms))
    else:
        Z = torch.where(is_zero, torch.zeros_like(Z), Z)
    return Z


def _small_gram(Z: torch.Tensor) -> torch.Tensor:
    # Z Z^T and Z^T Z share their non-zero spectrum; the smaller one is cheaper to decompose.
    return Z @ Z.T if Z.shape[0] <= Z.shape[1] else Z.T @ Z


def _drop_rounding(lam: torch.Tensor, size: int) -> torch.Tensor:
    """Zero the eigenvalues that are rounding noise (the matrix-rank tolerance size * eps * max)."""
    tol = size * torch.finfo(torch.float64).eps * lam.max().clamp_min(0.0)
    # Orders alpha < 1 weight tiny eigenvalues heavily (1e-17 ** 0.5 = 3e-9 each), so noise must not count.
    return torch.where(lam > tol, lam, torch.zeros_like(lam))


def _renyi(lam: torch.Tensor, alpha: float) -> float:
    """Renyi entropy (nats) of a probability vector ``lam`` (non-negative, sums to 1)."""
    lam = lam[lam > 0]
    if math.isinf(alpha):
        return float(-torch.log(lam.max()))
    if alpha == 1.0:
        return float(-(lam * torch.log(lam)).sum())
    return float(torch.log((lam**alpha).sum()) / (1.0 - alpha))


def _max_entropy(normalize: str, n: int, d: int, center: bool) -> float:
    if normalize == "log_n":
        return math.log(n)
    if normalize == "log_d":
        return math.log(d)
    if normalize == "log_min_nd":
        return math.log(min(n, d))
    # Centring removes one direction: N centred points span at most N - 1 dimensions.
    return math.log(min(n - 1 if center else n, d))


def matrix_entropy(
    Z: torch.Tensor,
    alpha: float = 1.0,
    normalize: Normalization = "raw",
    center: bool = True,
    row_normalize: bool = True,
) -> float:
    """Renyi matrix entropy of a token matrix, from the spectrum of its trace-normalised Gram matrix.

    The rows of ``Z`` are centred over tokens (``center``) and scaled to unit L2 norm (``row_normalize``).
    The Gram matrix K = Z Z^T (N x N) or Z^T Z (d x d), whichever is smaller (both have the same non-zero
    spectrum), is divided by its trace, so its eigenvalues lambda_i are non-negative and sum to 1
    (eigenvalues below the rounding tolerance size * eps * max lambda, negative ones included, are set to 0
    and the rest rescaled to sum 1; without this, orders alpha < 1 would count rounding noise). The entropy is

        S_alpha = log(sum_i lambda_i^alpha) / (1 - alpha),

    with the Shannon/von Neumann limit S_1 = -sum_i lambda_i log lambda_i at ``alpha=1`` and the min-entropy
    S_inf = -log max_i lambda_i at ``alpha=inf`` [Renyi1961]_ [Giraldo2014]_. It is 0 when a single direction
    carries everything (rank one) and log(rank) when the spectrum is flat. This is the RQ1 entropy of Ghosh et
    al. 2026 [Ghosh2026]_.

    Parameters
    ----------
    Z : torch.Tensor, shape (N, d)
        Token matrix of one group (for example the image tokens) at one layer. Any float dtype or device;
        the computation is done on a float64 copy.
    alpha : float, default 1.0
        Renyi order, > 0; ``1.0`` is Shannon, ``math.inf`` is the min-entropy.
    normalize : {"raw", "log_n", "log_d", "log_min", "log_min_nd"}, default "raw"
        Divide the entropy by log N, log d, or the log of the largest attainable rank, so that groups of
        different size compare. With ``center=True`` the centred matrix has rank at most N - 1, so
        ``"log_min"`` divides by log(min(N - 1, d)) and reaches exactly 1 for isotropic data (for example a
        regular simplex); without centring it divides by log(min(N, d)). ``"log_min_nd"`` always divides by
        log(min(N, d)), the divisor as PAPER.md and Skean et al. write it; after centring it stays slightly
        below 1 even for isotropic data when N <= d. Every normalised value lies in [0, 1]; it is NaN when
        the divisor is log 1 = 0.
    center : bool, default True
        Subtract the mean token before anything else.
    row_normalize : bool, default True
        Scale every token to unit L2 norm so that the measure sees directions, not magnitudes. Rows that are
        zero (norm below 1e-12 of the largest input row norm, i.e. zero up to rounding) stay zero.

    Returns
    -------
    float
        The entropy in nats (or its normalised value). NaN when the processed matrix is all zero (for example
        every token identical and ``center=True``): the spectrum is then empty and the entropy undefined.

    References
    ----------
    .. [Renyi1961] A. Renyi, "On measures of entropy and information", Proc. 4th Berkeley Symposium, 1961.
    .. [Giraldo2014] L. G. Sanchez Giraldo, M. Rao, J. C. Principe, "Measures of entropy from data using
       infinitely divisible kernels", IEEE Trans. Inf. Theory 61(1), 2015 (arXiv 1211.2459).
    .. [Ghosh2026] S. Ghosh, D. Babu, S. Agarwal, "Do Vision Language Models Need to Process Image Tokens?",
       CVPR 2026, arXiv 2604.09425.

    Examples
    --------
    >>> import torch
    >>> round(matrix_entropy(torch.eye(4), center=False), 4)  # four orthonormal tokens: log 4
    1.3863
    """
    a = _check_alpha(alpha)
    _check_normalize(normalize)
    Z = as_float64_matrix(Z)
    n, d = Z.shape
    Zp = _center_and_normalize_rows(Z, center, row_normalize)
    K = _small_gram(Zp)
    trace = torch.trace(K)
    if not trace > 0:
        return float("nan")
    lam = _drop_rounding(torch.linalg.eigvalsh(K / trace), K.shape[0])
    lam = lam / lam.sum()
    s = _renyi(lam, a)
    if normalize == "raw":
        return s
    denom = _max_entropy(normalize, n, d, center)
    return s / denom if denom > 0 else float("nan")


def skean_entropy(
    Z: torch.Tensor,
    alpha: float = 1.0,
    normalized: bool = True,
    clamp_gram: bool = True,
) -> float:
    """Prompt entropy of Skean et al. 2025, with the choices of the authors' released code.

    The preset makes exactly these choices, taken from github.com/OFSkean/information_flow
    (``normalize()`` applied to every layer's states, then ``compute_entropy()``, which calls
    ``repitl.matrix_itl.matrixAlphaEntropy``):

    1. centre the tokens (subtract the mean token) and scale every token to unit L2 norm (zero rows stay zero
       here; the reference code would divide by zero);
    2. Gram matrix on the smaller side: Z Z^T if N <= d, else Z^T Z;
    3. if ``clamp_gram``, negative *entries* of that Gram matrix are set to 0 (``torch.clamp(cov, min=0)``
       in the reference code; it is not in the paper's equations and makes the result depend on which side
       the Gram matrix was formed; pass ``clamp_gram=False`` for the equations as written);
    4. eigenvalues of the (symmetric) matrix; only the positive ones are kept and rescaled to sum to 1
       (repitl's ``generalizedInformationPotential``; without clamping this equals the trace normalisation).
       Here "positive" means above the rounding tolerance size * eps * max eigenvalue, which only matters
       for alpha < 1;
    5. Renyi entropy of order ``alpha`` in nats, alpha = 1 (Shannon) by default, as in the paper;
    6. if ``normalized``, divide by min(log N, log d) (the code's default ``'maxEntropy'`` normalisation;
       note it does not account for the rank lost to centring, unlike ``matrix_entropy(normalize="log_min")``).

    Parameters
    ----------
    Z : torch.Tensor, shape (N, d)
        Token matrix of one prompt (or one token group) at one layer.
    alpha : float, default 1.0
        Renyi order, > 0 (``math.inf`` allowed).
    normalized : bool, default True
        Divide by min(log N, log d); NaN when that is 0.
    clamp_gram : bool, default True
        Reproduce the reference code's clamping of negative Gram entries.

    Returns
    -------
    float
        The prompt entropy (nats, or normalised). NaN when no positive eigenvalue remains.

    References
    ----------
    .. [Skean2025] O. Skean, M. R. Arefin, D. Zhao, N. Patel, J. Naghiyev, Y. LeCun, R. Shwartz-Ziv,
       "Layer by Layer: Uncovering Hidden Representations in Language Models", ICML 2025, arXiv 2502.02013.
    """
    a = _check_alpha(alpha)
    Z = as_float64_matrix(Z)
    n, d = Z.shape
    K = _small_gram(_center_and_normalize_rows(Z, center=True, row_normalize=True))
    if clamp_gram:
        K = K.clamp_min(0.0)
    lam = _drop_rounding(torch.linalg.eigvalsh(K), K.shape[0])
    lam = lam[lam > 0]
    if lam.numel() == 0:
        return float("nan")
    s = _renyi(lam / lam.sum(), a)
    if not normalized:
        return s
    denom = min(math.log(n), math.log(d))
    return s / denom if denom > 0 else float("nan")


def entropy_choices(
    alpha: float = 1.0,
    normalize: Normalization = "raw",
    center: bool = True,
    row_normalize: bool = True,
) -> dict[str, Any]:
    """The options of a :func:`matrix_entropy` call as a JSON-ready dict, to be recorded with every result.

    Takes the same keyword options as :func:`matrix_entropy`, so ``matrix_entropy(Z, **opts)`` and
    ``entropy_choices(**opts)`` go together.

    Parameters
    ----------
    alpha, normalize, center, row_normalize
        As in :func:`matrix_entropy`. Invalid values raise :class:`visdepth.errors.ConfigError`, so a run can
        check its options before any model is loaded.

    Returns
    -------
    dict
        Keys ``function``, ``alpha``, ``normalize``, ``normalize_divisor``, ``center``, ``row_normalize``,
        ``gram``, ``clamp_gram``, ``log_base`` and ``reference``.
    """
    a = _check_alpha(alpha)
    _check_normalize(normalize)
    divisor = {
        "raw": None,
        "log_n": "log N",
        "log_d": "log d",
        "log_min": "log min(N-1, d)" if center else "log min(N, d)",
        "log_min_nd": "log min(N, d)",
    }[normalize]
    return {
        "function": "visdepth.metrics.matrix_entropy",
        "alpha": a,
        "normalize": normalize,
        "normalize_divisor": divisor,
        "center": bool(center),
        "row_normalize": bool(row_normalize),
        "gram": "smaller of ZZ^T / Z^TZ, trace-normalised, rounding-level eigenvalues set to 0",
        "clamp_gram": False,
        "log_base": "e",
        "reference": "Ghosh et al. 2026 (arXiv 2604.09425), RQ1 matrix entropy",
    }


def skean_entropy_choices(
    alpha: float = 1.0, normalized: bool = True, clamp_gram: bool = True
) -> dict[str, Any]:
    """The options of a :func:`skean_entropy` call as a JSON-ready dict (same keys as :func:`entropy_choices`).

    Parameters
    ----------
    alpha, normalized, clamp_gram
        As in :func:`skean_entropy`; an invalid ``alpha`` raises :class:`visdepth.errors.ConfigError`.

    Returns
    -------
    dict
        The fixed preprocessing of the preset and the given options.
    """
    a = _check_alpha(alpha)
    return {
        "function": "visdepth.metrics.skean_entropy",
        "alpha": a,
        "normalize": "log_min_nd" if normalized else "raw",
        "normalize_divisor": "min(log N, log d)" if normalized else None,
        "center": True,
        "row_normalize": True,
        "gram": "smaller of ZZ^T / Z^TZ, positive eigenvalues rescaled to sum 1",
        "clamp_gram": bool(clamp_gram),
        "log_base": "e",
        "reference": _SKEAN_REFERENCE,
    }
