"""Similarity between two sets of representations of the same tokens or items (RQ2, layer comparisons).

``linear_cka`` compares two representations of the same N items as wholes (invariant to rotation and
isotropic scaling); ``mean_cosine`` compares them row by row. Both compute in float64.
"""

from __future__ import annotations

import torch

from visdepth.metrics._checks import as_float64_matrix


def linear_cka(X: torch.Tensor, Y: torch.Tensor) -> float:
    """Linear centred kernel alignment between two representations of the same N items.

    After centring the columns of X (N x d1) and Y (N x d2),

        CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F),

    which equals the Gram-matrix form <X X^T, Y Y^T>_F / (||X X^T||_F ||Y Y^T||_F) (HSIC with linear
    kernels) [Kornblith2019]_. The cheaper form is chosen from the shapes: the feature form costs about
    N (d1 d2 + d1^2 + d2^2) operations, the Gram form about N^2 (d1 + d2). The value lies in [0, 1], is
    symmetric, and is invariant to orthogonal transformations and isotropic scaling of either input.

    Parameters
    ----------
    X : torch.Tensor, shape (N, d1)
    Y : torch.Tensor, shape (N, d2)
        The same N items (rows in the same order) in two representations; widths may differ.

    Returns
    -------
    float
        CKA; NaN when either input has no variance across items (every row equal, or N = 1).

    References
    ----------
    .. [Kornblith2019] S. Kornblith, M. Norouzi, H. Lee, G. Hinton, "Similarity of Neural Network
       Representations Revisited", ICML 2019, arXiv 1905.00414.
    """
    X = as_float64_matrix(X, "X")
    Y = as_float64_matrix(Y, "Y").to(X.device)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X and Y must describe the same items: got {X.shape[0]} and {Y.shape[0]} rows.")
    n, d1 = X.shape
    d2 = Y.shape[1]
    X = X - X.mean(dim=0, keepdim=True)
    Y = Y - Y.mean(dim=0, keepdim=True)
    if d1 * d2 + d1 * d1 + d2 * d2 <= n * (d1 + d2):
        num = torch.linalg.matrix_norm(Y.T @ X) ** 2
        den = torch.linalg.matrix_norm(X.T @ X) * torch.linalg.matrix_norm(Y.T @ Y)
    else:
        Kx = X @ X.T
        Ky = Y @ Y.T
        num = (Kx * Ky).sum()
        den = torch.linalg.matrix_norm(Kx) * torch.linalg.matrix_norm(Ky)
    if not den > 0:
        return float("nan")
    return float(num / den)


def mean_cosine(X: torch.Tensor, Y: torch.Tensor) -> float:
    """Mean cosine similarity between matched rows of X and Y.

    cos_i = <x_i, y_i> / (|x_i| |y_i|), averaged over i. Unlike CKA it is sensitive to rotation of one input
    and compares items one to one, for example the states of the same tokens under two interventions.

    Parameters
    ----------
    X, Y : torch.Tensor, shape (N, d) or (d,)
        Matched rows (a 1-D input is a single row).

    Returns
    -------
    float
        Mean cosine in [-1, 1]. Pairs where either row is exactly zero have no direction and are left out;
        NaN when none is left.

    References
    ----------
    .. [Salton1975] G. Salton, A. Wong, C. S. Yang, "A vector space model for automatic indexing",
       Communications of the ACM 18(11), 1975 (cosine similarity).
    """
    if not isinstance(X, torch.Tensor):
        X = torch.as_tensor(X)
    if not isinstance(Y, torch.Tensor):
        Y = torch.as_tensor(Y)
    X = as_float64_matrix(X.reshape(1, -1) if X.ndim == 1 else X, "X")
    Y = as_float64_matrix(Y.reshape(1, -1) if Y.ndim == 1 else Y, "Y").to(X.device)
    if X.shape != Y.shape:
        raise ValueError(f"X and Y must have the same shape, got {tuple(X.shape)} and {tuple(Y.shape)}.")
    nx = torch.linalg.vector_norm(X, dim=1)
    ny = torch.linalg.vector_norm(Y, dim=1)
    valid = (nx > 0) & (ny > 0)
    if not valid.any():
        return float("nan")
    cos = (X[valid] * Y[valid]).sum(dim=1) / (nx[valid] * ny[valid])
    return float(cos.clamp(-1.0, 1.0).mean())
