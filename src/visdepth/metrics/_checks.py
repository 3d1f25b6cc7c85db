"""Input checks shared by the metric modules: every metric works on a float64 copy of a 2-D token matrix."""

from __future__ import annotations

import torch


def as_float64_matrix(Z: torch.Tensor, name: str = "Z") -> torch.Tensor:
    """Return ``Z`` as a detached float64 tensor of shape (N, d), raising ``ValueError`` on anything else."""
    if not isinstance(Z, torch.Tensor):
        Z = torch.as_tensor(Z)
    if Z.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D (tokens, features) matrix, got shape {tuple(Z.shape)}; "
            "select one group at one layer first."
        )
    if Z.shape[0] == 0 or Z.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(Z.shape)}); the token group has no tokens.")
    Z = Z.detach().to(torch.float64)
    if not torch.isfinite(Z).all():
        raise ValueError(f"{name} contains NaN or infinite values; check the captured states.")
    return Z
