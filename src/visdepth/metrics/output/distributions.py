"""How far a modified model's next-token distribution moved from the full one: KL divergence and agreement."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = torch.as_tensor(a).detach(), torch.as_tensor(b).detach()
    if a.shape != b.shape:
        raise ValueError(
            f"logits of shapes {tuple(a.shape)} and {tuple(b.shape)} differ; compare the same positions of "
            "the same vocabulary"
        )
    if a.ndim == 0 or a.shape[-1] == 0:
        raise ValueError("logits need a non-empty vocabulary axis (the last one)")
    return a, b.to(a.device)


def kl_divergence(logits_full: torch.Tensor, logits_modified: torch.Tensor) -> torch.Tensor:
    """KL(p_full || p_modified) of next-token distributions given as logits, in nats.

    Both inputs have shape ``(..., vocab)``; the result has shape ``(...)`` (0-d for single rows), float64.
    Computed from ``log_softmax`` in float64 so large logits neither overflow nor lose the small
    probabilities that dominate the divergence; vocabulary entries with zero probability under ``p_full``
    (``-inf`` logits) contribute nothing. It is 0 exactly for equal distributions and grows as the modified
    model moves probability away from the full model's choices (as used to pick the withdrawal layer in VTW,
    Lin et al., AAAI 2025).
    """
    p, q = _pair(logits_full, logits_modified)
    logp = torch.log_softmax(p.to(torch.float64), dim=-1)
    logq = torch.log_softmax(q.to(torch.float64), dim=-1)
    prob = logp.exp()
    terms = torch.where(prob > 0, prob * (logp - logq), torch.zeros((), dtype=torch.float64, device=p.device))
    return terms.sum(-1).clamp_min(0.0)  # rounding can leave -1e-17 for equal inputs


def top1_agreement(logits_full: torch.Tensor, logits_modified: torch.Tensor) -> torch.Tensor:
    """Whether the most likely next token is the same (bool tensor of shape ``(...)``)."""
    p, q = _pair(logits_full, logits_modified)
    return p.argmax(-1) == q.argmax(-1)


def first_token_agreement(
    tokens_full: Sequence[int] | torch.Tensor, tokens_modified: Sequence[int] | torch.Tensor
) -> float:
    """1.0 when two generations start with the same token id, else 0.0 (two empty generations agree)."""
    a = torch.as_tensor(tokens_full).reshape(-1).tolist()
    b = torch.as_tensor(tokens_modified).reshape(-1).tolist()
    if not a or not b:
        return float(not a and not b)
    return float(a[0] == b[0])
