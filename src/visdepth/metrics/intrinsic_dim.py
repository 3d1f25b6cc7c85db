"""Intrinsic dimension of a token cloud (RQ1): TwoNN, as in the paper, and the Levina-Bickel MLE.

Both estimators come from scikit-dimension and run on a float64 NumPy copy with exact duplicate points
removed first (a zero nearest-neighbour distance makes both estimators undefined). Neighbour search is exact,
so the results are deterministic.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from typing import Any, Literal

import numpy as np
import torch

from visdepth.errors import ConfigError
from visdepth.metrics._checks import as_float64_matrix

IDMethod = Literal["twonn", "twonn_linear", "mle"]
ID_METHODS: tuple[str, ...] = ("twonn", "twonn_linear", "mle")


def _check_method(method: str, k: int) -> None:
    if method not in ID_METHODS:
        raise ConfigError(
            f"intrinsic-dimension method must be one of {', '.join(ID_METHODS)}; got {method!r}."
        )
    if method == "mle" and (not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 2):
        raise ConfigError(f"MLE intrinsic dimension needs an integer k >= 2 neighbours, got {k!r}.")


def _prepare(Z: torch.Tensor, dedup: bool) -> np.ndarray:
    X = as_float64_matrix(Z).cpu().numpy()
    if dedup:
        # Exact equality after the cast to float64, no tolerance: only exact copies give r1 = 0 and break the
        # estimators, while merging merely close points would bias the small-scale ratios they rely on.
        X = np.unique(X, axis=0)
    if X.shape[1] == 1:
        # scikit-dimension requires two columns; a zero column leaves every distance unchanged.
        X = np.hstack([X, np.zeros_like(X)])
    return X


def intrinsic_dimension(
    Z: torch.Tensor,
    method: IDMethod = "twonn",
    k: int = 20,
    dedup: bool = True,
) -> float:
    """Intrinsic dimension of the point cloud formed by the rows of ``Z``.

    ``"twonn"`` (the paper's estimator) [Facco2017]_: for every point, mu = r2 / r1, the ratio of its second
    to first nearest-neighbour distance. mu follows a Pareto law with shape d, and the maximum-likelihood
    estimate is d = N / sum_i log mu_i over all N points. scikit-dimension's ``TwoNN`` computes the ratios
    (with ``discard_fraction=0`` and ``method="mle"``, i.e. no ratio discarded); its own closed form is the
    unbiased (N - 1) / sum log mu, so the paper's N / sum log mu is formed here from its ``x_`` (= log mu).
    ``"twonn_linear"``: scikit-dimension's default TwoNN, the linear fit through the empirical cumulative
    distribution of Facco et al. 2017 with the 10% largest ratios discarded.
    ``"mle"``: Levina-Bickel maximum likelihood on ``k`` nearest neighbours [Levina2005]_, the pointwise
    estimates combined by their harmonic mean [MacKay2005]_ (scikit-dimension ``MLE``, ``comb="mle"``).

    Parameters
    ----------
    Z : torch.Tensor, shape (N, d)
        Token states of one group at one layer (a float64 copy is used).
    method : {"twonn", "twonn_linear", "mle"}, default "twonn"
        Estimator.
    k : int, default 20
        Neighbours for ``"mle"`` (ignored otherwise); clipped to (number of unique points - 1).
    dedup : bool, default True
        Remove exact duplicate rows first (exact equality in float64; see the note in the code). Duplicates
        arise in practice (repeated padding or identical image patches) and give r1 = 0. With
        ``dedup=False`` scikit-dimension's TwoNN drops such points with a warning and MLE returns nonsense,
        so switch it off only to study that effect.

    Returns
    -------
    float
        The estimate. NaN when too few unique points remain: fewer than 3 for TwoNN (each point needs two
        other points), fewer than 3 for MLE (k is clipped to n - 1 and needs k >= 2). Infinite for TwoNN when
        every ratio is exactly 1 (for example three points on an equilateral triangle).

    References
    ----------
    .. [Facco2017] E. Facco, M. d'Errico, A. Rodriguez, A. Laio, "Estimating the intrinsic dimension of
       datasets by a minimal neighborhood information", Scientific Reports 7, 12140 (2017).
    .. [Levina2005] E. Levina, P. J. Bickel, "Maximum likelihood estimation of intrinsic dimension",
       NeurIPS 2004 (2005).
    .. [MacKay2005] D. J. C. MacKay, Z. Ghahramani, "Comments on 'Maximum likelihood estimation of intrinsic
       dimension' by E. Levina and P. Bickel", 2005.
    """
    _check_method(method, k)
    import skdim  # deferred: importing scikit-dimension takes seconds

    X = _prepare(Z, dedup)
    n = X.shape[0]
    if n < 3:
        return float("nan")
    if method == "mle":
        k_eff = min(int(k), n - 1)
        est = skdim.id.MLE().fit(X, n_neighbors=k_eff, comb="mle")
        return float(est.dimension_)
    if method == "twonn_linear":
        if int(n * 0.9) < 2:
            return float("nan")
        return float(skdim.id.TwoNN().fit(X).dimension_)
    with warnings.catch_warnings():
        # With nothing discarded, skdim's unused linear-fit ordinate -log(1 - F) hits log(0) at the last point.
        warnings.simplefilter("ignore", RuntimeWarning)
        est = skdim.id.TwoNN(discard_fraction=0.0, method="mle").fit(X)
    log_mu = np.asarray(est.x_, dtype=np.float64).ravel()
    total = float(log_mu.sum())
    return float(len(log_mu) / total) if total > 0 else float("inf")


def intrinsic_dimension_choices(
    method: IDMethod = "twonn", k: int = 20, dedup: bool = True
) -> dict[str, Any]:
    """The options of :func:`intrinsic_dimension` as a JSON-ready dict, to be recorded with every result.

    Parameters
    ----------
    method, k, dedup
        As in :func:`intrinsic_dimension`; invalid values raise :class:`visdepth.errors.ConfigError`.

    Returns
    -------
    dict
        Keys ``method``, ``formula``, ``k`` (None unless MLE), ``dedup``, ``backend``.
    """
    _check_method(method, k)
    formula = {
        "twonn": "d = N / sum(log(r2/r1)) (Facco et al. 2017, MLE form, no ratio discarded)",
        "twonn_linear": "linear fit of -log(1-F(mu)) on log(mu), 10% largest ratios discarded",
        "mle": "Levina-Bickel pointwise MLE, harmonic mean over points (MacKay-Ghahramani)",
    }[method]
    try:
        backend = f"scikit-dimension {importlib.metadata.version('scikit-dimension')}"
    except importlib.metadata.PackageNotFoundError:
        backend = "scikit-dimension (version unknown)"
    return {
        "method": method,
        "formula": formula,
        "k": int(k) if method == "mle" else None,
        "dedup": bool(dedup),
        "dedup_tolerance": "exact float64 equality" if dedup else None,
        "backend": backend,
    }
