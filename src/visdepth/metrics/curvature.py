"""Curvature of representation trajectories (RQ1): across depth (the paper's) and along the token sequence.

Two different quantities share the name in the literature, so they are named apart here:
``depth_curvature`` follows each token through the layers (Ghosh et al. 2026), ``sequence_curvature`` follows
the sequence of tokens within one layer (Skean et al. 2025, after Hosseini & Fedorenko 2023). Angles are in
radians, computed in float64.
"""

from __future__ import annotations

import torch

from visdepth.metrics._checks import as_float64_matrix


def _angles(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Angles between matching rows of ``a`` and ``b`` (last dim) and a mask of rows where both are non-zero."""
    na = torch.linalg.vector_norm(a, dim=-1)
    nb = torch.linalg.vector_norm(b, dim=-1)
    valid = (na > 0) & (nb > 0)
    denom = torch.where(valid, na * nb, torch.ones_like(na))
    cos = ((a * b).sum(dim=-1) / denom).clamp(-1.0, 1.0)
    return torch.arccos(cos), valid


def depth_curvature(states: torch.Tensor) -> torch.Tensor:
    """Mean turning angle of the tokens' trajectories across depth, one value per layer.

    For token i the update at layer l is v_l = h_l - h_(l-1) (l = 1..L), and the curvature at layer l
    (l = 2..L) is the mean over tokens of

        arccos(<v_l, v_(l-1)> / (|v_l| |v_(l-1)|)),

    the cosine being clamped to [-1, 1] against rounding [Ghosh2026]_. 0 means the layer keeps moving the
    token in the same direction as the layer before, pi/2 an orthogonal turn, pi a reversal.

    Parameters
    ----------
    states : torch.Tensor, shape (L + 1, N, d) or (L + 1, d)
        States of N tokens at layers 0..L (layer 0 = embedding output); a 2-D input is one token.
        A float64 copy is used.

    Returns
    -------
    torch.Tensor, shape (L + 1,), float64
        Index = layer. Entries 0 and 1 are NaN (no pair of updates exists yet). A token whose update v_l or
        v_(l-1) is exactly zero (the layer left it unchanged) has no defined angle and is left out of that
        layer's mean; a layer where no token has both updates non-zero is NaN.

    References
    ----------
    .. [Ghosh2026] S. Ghosh, D. Babu, S. Agarwal, "Do Vision Language Models Need to Process Image Tokens?",
       CVPR 2026, arXiv 2604.09425.
    """
    if not isinstance(states, torch.Tensor):
        states = torch.as_tensor(states)
    if states.ndim == 2:
        states = states.unsqueeze(1)
    if states.ndim != 3:
        raise ValueError(
            f"states must have shape (layers, tokens, features), got {tuple(states.shape)}; "
            "stack the captured layers along dim 0."
        )
    h = states.detach().to(torch.float64)
    if h.shape[0] == 0 or h.shape[1] == 0 or h.shape[2] == 0:
        raise ValueError(f"states is empty (shape {tuple(h.shape)}).")
    if not torch.isfinite(h).all():
        raise ValueError("states contains NaN or infinite values; check the captured states.")
    out = torch.full((h.shape[0],), float("nan"), dtype=torch.float64, device=h.device)
    if h.shape[0] < 3:
        return out
    v = h[1:] - h[:-1]  # v[j] is the update of layer j + 1
    ang, valid = _angles(v[1:], v[:-1])  # row j pairs the updates of layers j + 2 and j + 1
    count = valid.sum(dim=1)
    total = torch.where(valid, ang, torch.zeros_like(ang)).sum(dim=1)
    out[2:] = torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))
    return out


def sequence_curvature(Z: torch.Tensor, center_and_normalize: bool = False) -> float:
    """Mean turning angle of the token sequence within one layer (Skean et al. 2025's curvature).

    With z_1..z_N the token states in sequence order, u_k = z_(k+1) - z_k are the steps between consecutive
    tokens, and the curvature is the mean over k of arccos(<u_(k+1), u_k> / (|u_(k+1)| |u_k|)) (cosine clamped
    to [-1, 1]) [Skean2025]_ [Hosseini2023]_. This measures how straight the sentence runs through the
    representation space at one layer; it says nothing about change across depth (see ``depth_curvature``).

    Parameters
    ----------
    Z : torch.Tensor, shape (N, d)
        Token states of one sequence at one layer, in sequence order.
    center_and_normalize : bool, default False
        First centre the tokens and scale each to unit norm, as the Skean et al. pipeline does to every
        layer's states before all its metrics. Off by default: the definition is on the raw states.
        (Their released code also differs from the equation in places, e.g. one version takes the absolute
        value of the dot product; this function implements the equation.)

    Returns
    -------
    float
        Mean angle in radians. Steps of zero length (two consecutive identical tokens) have no direction; pairs
        involving one are left out. NaN when N < 3 or no valid pair remains.

    References
    ----------
    .. [Skean2025] O. Skean et al., "Layer by Layer: Uncovering Hidden Representations in Language Models",
       ICML 2025, arXiv 2502.02013.
    .. [Hosseini2023] E. A. Hosseini, E. Fedorenko, "Large language models implicitly learn to straighten
       neural sentence trajectories to construct a predictive representation of natural language",
       NeurIPS 2023.
    """
    Z = as_float64_matrix(Z)
    if center_and_normalize:
        Z = Z - Z.mean(dim=0, keepdim=True)
        norms = torch.linalg.vector_norm(Z, dim=1, keepdim=True)
        Z = torch.where(norms > 0, Z / torch.where(norms > 0, norms, torch.ones_like(norms)), Z)
    if Z.shape[0] < 3:
        return float("nan")
    u = Z[1:] - Z[:-1]
    ang, valid = _angles(u[1:], u[:-1])
    if not valid.any():
        return float("nan")
    return float(ang[valid].mean())
