"""The exact-GP negative marginal log-likelihood of the deep-kernel GP on one Cholesky factor, and its analytic
backward: the math shared by the autograd path (``surrogates.gp``) and the fused fit (``surrogates.fused``).

Imports torch only; neither module it serves is imported here (no cycle).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

_JITTER = (1e-6, 1e-5, 1e-4)  # gpytorch's float32 cholesky_jitter, 3 tries
_MIN_VARIANCE = 1e-6  # gpytorch.settings.min_variance for float32
_LOG_2PI = math.log(2.0 * math.pi)


class NotPositiveDefiniteError(RuntimeError):
    """The kernel matrix stayed indefinite after the largest jitter."""


def sq_dist(a: torch.Tensor, b: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """``(n, m)`` squared Euclidean distances of rows of ``a`` ``(n, k)`` and ``b`` ``(m, k)``.

    Both are shifted by ``center`` ``(1, k)`` first (as gpytorch does, for float32 accuracy); negative
    rounding errors are clamped to 0.
    """
    a, b = a - center, b - center
    out = torch.addmm((a * a).sum(1, keepdim=True), a, b.T, alpha=-2.0)
    out += (b * b).sum(1)
    return out.clamp_min_(0.0)


def safe_cholesky(k: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor of ``k`` ``(N, N)``; adds gpytorch's jitter to the diagonal when needed.

    Raises :class:`NotPositiveDefiniteError` (a ``RuntimeError``) if the largest jitter fails or ``k`` has NaNs.
    """
    chol, info = torch.linalg.cholesky_ex(k)
    if not bool(info):
        return chol
    if bool(torch.isnan(k).any()):
        raise NotPositiveDefiniteError("kernel matrix has NaN entries")
    k = k.clone()
    previous = 0.0
    for jitter in _JITTER:
        k.diagonal().add_(jitter - previous)
        previous = jitter
        warnings.warn(f"kernel matrix not p.d., added jitter of {jitter:.1e} to the diagonal", stacklevel=3)
        chol, info = torch.linalg.cholesky_ex(k)
        if not bool(info):
            return chol
    raise NotPositiveDefiniteError(f"kernel matrix not positive definite after adding jitter {_JITTER[-1]:.0e}")


Scalar = float | torch.Tensor
"""A GP hyperparameter: a Python float (fused fit) or a 0-dim tensor (autograd)."""


def exact_nll(
    z: torch.Tensor, y: torch.Tensor, c: Scalar, s: Scalar, ls: Scalar, v: Scalar, with_loss: bool = True
) -> tuple[Any, tuple]:
    """Negative exact marginal log-likelihood per point of an RBF GP, and what its backward needs.

    Inputs: features ``z`` ``(N, k)``, targets ``y`` ``(N,)`` and the scalars mean ``c``, outputscale
    ``s``, lengthscale ``l``, noise ``v``. With ``K = s exp(-|z_i - z_j|^2 / (2 l^2)) + v I = L L^T``
    and ``a = K^-1 (y - c)``: ``loss = (0.5 (y - c)^T a + sum log diag L + 0.5 N log 2 pi) / N``
    (a 0-dim tensor; ``None`` with ``with_loss=False``, when only the gradient is needed). Raises
    :class:`NotPositiveDefiniteError` if ``K`` stays indefinite.
    """
    n = z.shape[0]
    zs = z / ls
    zc = zs - zs.mean(0, keepdim=True)
    sq = (zc * zc).sum(1, keepdim=True)
    kf = torch.addmm(sq, zc, zc.T, alpha=-2.0).add_(sq.T).clamp_min_(0.0)  # sq_dist(zc, zc, 0)
    kf.diagonal().zero_()
    kf.mul_(-0.5).exp_().mul_(s)
    k = kf.clone()
    k.diagonal().add_(v)
    chol = safe_cholesky(k)
    r = (y - c).unsqueeze(1)
    alpha = torch.cholesky_solve(r, chol).squeeze(1)
    saved = (zc, kf, chol, alpha, s, ls)
    if not with_loss:
        return None, saved
    loss = (0.5 * (r.squeeze(1) @ alpha) + chol.diagonal().log().sum() + 0.5 * n * _LOG_2PI) / n
    return loss, saved


def exact_nll_backward(saved: tuple, grad: Scalar = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of ``grad * loss`` of :func:`exact_nll` (from its ``saved``): ``d_z`` ``(N, k)`` and
    ``(4,)`` for ``(c, s, l, v)``.

    ``dloss/dK = (K^-1 - a a^T) / (2N)``, contracted with the kernel's derivatives.
    """
    zc, kf, chol, alpha, s, ls = saved
    n = zc.shape[0]
    g = torch.cholesky_inverse(chol)  # becomes dloss/dK = (K^-1 - a a^T) grad / (2N)
    g.addr_(alpha, alpha, alpha=-1.0)
    g.mul_(grad * (0.5 / n))
    d_v = g.diagonal().sum()
    g.mul_(kf)  # W = dloss/dK * Kf
    d_s = g.sum() / s
    # sq_ij = |zc_i - zc_j|^2 / ... ; dloss/dzc_i = -sum_j W_ij (zc_i - zc_j) * 2 / 2 (symmetric W)
    d_zc = torch.addmm(zc * g.sum(1, keepdim=True), g, zc, alpha=-1.0).mul_(-2.0)
    d_z = d_zc / ls
    d_ls = -(d_zc * zc).sum() / ls
    d_c = -(grad / n) * alpha.sum()
    return d_z, torch.stack([d_c, d_s, d_ls, d_v])
