# mypy: disable-error-code="call-overload"
"""Numba-compiled steps of Quick-Tune's meta-training: the performance GP's step with two learning rates, the cost
network's step, and the validation scores, each one compiled call (``surrogates.compiled_meta`` drives them).

The performance step is :func:`surrogates.jit_kernels.quicktune_grad` (the compiled fit's gradient) followed by
Adam with one learning rate for the network and one for the GP's four raw hyperparameters (the reference
schedule's ``gp_lr_factor``). The cost network (``surrogates.nets.CostNet``) is written out here as the GP's
network is in ``surrogates.jit_kernels``, sharing its curve encoder (:func:`surrogates.jit_kernels.curve_forward`).
Arrays are in the models' dtype (float32 by default); scalar reductions accumulate in float64.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from surrogates.jit_kernels import (
    _FAST,
    JITTER,
    LEAKY,
    NOT_PD,
    OK,
    _linear,
    _linear_backward,
    _mask_relu_,
    _quicktune_forward,
    _relu_,
    _softplus,
    _view,
    adam,
    cho_solve,
    curve_backward,
    curve_forward,
    curve_workspace,
    jittered_cholesky,
    quicktune_grad,
)

COST_PARAMETERS = 14
"""Parameters of ``surrogates.nets.CostNet`` in ``parameters()`` order: meta encoder (W, b), conv1, conv2, the curve
encoder's dense layer, then the three layers of the head (W, b each)."""


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def quicktune_meta_step(
    theta: np.ndarray, m: np.ndarray, v: np.ndarray, step: int, lr: float, lr_gp: float, offsets: np.ndarray,
    shapes: np.ndarray, xm: np.ndarray, xh: np.ndarray, budget: np.ndarray, curve: np.ndarray, meta: np.ndarray,
    y: np.ndarray, scales: np.ndarray, noise_floor: float, jitters: np.ndarray,
) -> tuple[int, float]:  # fmt: skip
    """One meta-training step of the performance GP (arguments as ``jit_kernels.quicktune_fit``; ``scales`` ``(N, C)``).

    Adam step number ``step`` (from 1) with learning rate ``lr`` for the network and ``lr_gp`` for the GP's 4 raw
    hyperparameters (the last 4 entries of ``theta``), taken only when the loss is finite and the status ``OK``
    (as the autograd loop skips a non-finite loss). Returns (status, loss).
    """
    grad = np.zeros_like(theta)
    ws = curve_workspace(curve.shape[0], curve.shape[1], shapes[1], theta)
    status, loss = quicktune_grad(theta, grad, offsets, shapes, xm, xh, budget, curve, meta, y, scales, noise_floor,
                                  jitters, ws)  # fmt: skip
    if status == OK and math.isfinite(loss):
        split = theta.shape[0] - 4
        adam(theta[:split], grad[:split], m[:split], v[:split], step, lr)
        adam(theta[split:], grad[split:], m[split:], v[split:], step, lr_gp)
    return status, loss


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def quicktune_features(
    theta: np.ndarray, offsets: np.ndarray, shapes: np.ndarray, xm: np.ndarray, xh: np.ndarray, budget: np.ndarray,
    curve: np.ndarray, meta: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """``(N, K)`` features of Quick-Tune's kernel network in evaluation mode (no dropout)."""
    n = curve.shape[0]
    ws = curve_workspace(n, curve.shape[1], shapes[1], theta)
    scales = np.ones((n, shapes[1]), dtype=theta.dtype)
    out = _quicktune_forward(theta, offsets, shapes, xm, xh, budget, curve, meta, scales, ws)[4]
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            if out[i, j] <= 0:
                out[i, j] *= LEAKY
    return out


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def _cost_forward(
    theta: np.ndarray, offsets: np.ndarray, shapes: np.ndarray, x: np.ndarray, budget: np.ndarray, curve: np.ndarray,
    meta: np.ndarray, scales: np.ndarray, ws: tuple,
) -> tuple:  # fmt: skip
    """``CostNet``'s forward pass: returns (curve features ``f``, head input ``z``, first pre-activation ``a1``, its
    LeakyReLU ``h1``, second ReLU output ``h2``, prediction ``(N,)``).

    ``shapes`` = (channels C, curve dim F, hidden H).
    """
    n, d = x.shape
    ch, fdim, hid = shapes[0], shapes[1], shapes[2]
    flat = curve_forward(curve, _view(theta, offsets, 2, ch), theta[offsets[3] : offsets[4]],
                         _view(theta, offsets, 4, ch), theta[offsets[5] : offsets[6]], scales, ws)  # fmt: skip
    f = _relu_(_linear(flat, _view(theta, offsets, 6, fdim), theta[offsets[7] : offsets[8]]))
    z = np.empty((n, d + 1 + 4 + fdim), dtype=theta.dtype)
    z[:, :d] = x
    z[:, d : d + 1] = budget
    z[:, d + 1 : d + 5] = _linear(meta, _view(theta, offsets, 0, 4), theta[offsets[1] : offsets[2]])
    z[:, d + 5 :] = f
    a1 = _linear(z, _view(theta, offsets, 8, hid), theta[offsets[9] : offsets[10]])
    h1 = np.empty_like(a1)
    for i in range(n):
        for j in range(hid):
            h1[i, j] = a1[i, j] if a1[i, j] > 0 else LEAKY * a1[i, j]
    h2 = _relu_(_linear(h1, _view(theta, offsets, 10, hid), theta[offsets[11] : offsets[12]]))
    pred = _linear(h2, _view(theta, offsets, 12, 1), theta[offsets[13] : offsets[14]])[:, 0]
    return f, z, a1, h1, h2, pred


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def cost_grad(
    theta: np.ndarray, grad: np.ndarray, offsets: np.ndarray, shapes: np.ndarray, x: np.ndarray, budget: np.ndarray,
    curve: np.ndarray, meta: np.ndarray, target: np.ndarray, scales: np.ndarray,
) -> float:  # fmt: skip
    """MSE of ``CostNet`` on ``target`` ``(N,)`` (standardized log seconds) and its gradient into ``grad``.

    Inputs: ``x`` ``(N, D)``, ``budget`` ``(N, 1)``, ``curve`` ``(N, E)``, ``meta`` ``(N, 4)``; ``scales`` ``(N, C)``:
    the curve encoder's dropout scales; ``offsets`` ``(15,)`` of the :data:`COST_PARAMETERS` in ``theta``.
    """
    n, d = x.shape
    ch, fdim, hid = shapes[0], shapes[1], shapes[2]
    ws = curve_workspace(n, curve.shape[1], ch, theta)
    f, z, a1, h1, h2, pred = _cost_forward(theta, offsets, shapes, x, budget, curve, meta, scales, ws)
    loss = 0.0
    d_pred = np.empty((n, 1), dtype=theta.dtype)
    for i in range(n):
        e = pred[i] - target[i]
        loss += e * e
        d_pred[i, 0] = 2.0 * e / n
    _linear_backward(d_pred, h2, _view(grad, offsets, 12, 1), grad[offsets[13] : offsets[14]])
    d_a2 = _mask_relu_(np.dot(d_pred, _view(theta, offsets, 12, 1)), h2)
    _linear_backward(d_a2, h1, _view(grad, offsets, 10, hid), grad[offsets[11] : offsets[12]])
    d_a1 = np.dot(d_a2, _view(theta, offsets, 10, hid))
    for i in range(n):
        for j in range(hid):
            if a1[i, j] <= 0:
                d_a1[i, j] *= LEAKY
    _linear_backward(d_a1, z, _view(grad, offsets, 8, hid), grad[offsets[9] : offsets[10]])
    d_z = np.dot(d_a1, _view(theta, offsets, 8, hid))
    _linear_backward(np.ascontiguousarray(d_z[:, d + 1 : d + 5]), meta, _view(grad, offsets, 0, 4),
                     grad[offsets[1] : offsets[2]])  # fmt: skip
    d_f = _mask_relu_(np.ascontiguousarray(d_z[:, d + 5 :]), f)
    _linear_backward(d_f, ws[4], _view(grad, offsets, 6, fdim), grad[offsets[7] : offsets[8]])
    d_flat = _mask_relu_(np.dot(d_f, _view(theta, offsets, 6, fdim)), ws[4])
    curve_backward(d_flat, _view(theta, offsets, 4, ch), scales, ws, _view(grad, offsets, 2, ch),
                   grad[offsets[3] : offsets[4]], _view(grad, offsets, 4, ch),
                   grad[offsets[5] : offsets[6]])  # fmt: skip
    return loss / n


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def cost_step(
    theta: np.ndarray, m: np.ndarray, v: np.ndarray, step: int, lr: float, offsets: np.ndarray, shapes: np.ndarray,
    x: np.ndarray, budget: np.ndarray, curve: np.ndarray, meta: np.ndarray, target: np.ndarray, scales: np.ndarray,
) -> float:  # fmt: skip
    """One Adam step (number ``step``, from 1) of the cost network on the batch (arguments as :func:`cost_grad`)."""
    grad = np.zeros_like(theta)
    loss = cost_grad(theta, grad, offsets, shapes, x, budget, curve, meta, target, scales)
    adam(theta, grad, m, v, step, lr)
    return loss


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def cost_mse(
    theta: np.ndarray, offsets: np.ndarray, shapes: np.ndarray, x: np.ndarray, budget: np.ndarray, curve: np.ndarray,
    meta: np.ndarray, target: np.ndarray,
) -> float:  # fmt: skip
    """MSE of the cost network in evaluation mode (no dropout) on ``target`` ``(N,)``; 0 without rows."""
    n = x.shape[0]
    if n == 0:
        return 0.0
    ws = curve_workspace(n, curve.shape[1], shapes[0], theta)
    scales = np.ones((n, shapes[0]), dtype=theta.dtype)
    pred = _cost_forward(theta, offsets, shapes, x, budget, curve, meta, scales, ws)[5]
    loss = 0.0
    for i in range(n):
        loss += (pred[i] - target[i]) ** 2
    return loss / n


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def gp_mean(
    z_train: np.ndarray, y: np.ndarray, z_query: np.ndarray, raw: np.ndarray, noise_floor: float
) -> tuple[int, np.ndarray]:  # fmt: skip
    """Posterior mean ``(Q,)`` (float64) at features ``z_query`` ``(Q, k)`` of the RBF GP conditioned on ``z_train``
    ``(N, k)``, ``y`` ``(N,)``, with raw hyperparameters ``raw`` ``(4,)`` (as ``DeepKernelGP.predict``: gpytorch's
    jitter when the kernel matrix is not positive definite). Returns (status, mean); the mean is NaN unless ``OK``."""
    n, k = z_train.shape
    q = z_query.shape[0]
    c, s, ls = raw[0], _softplus(raw[1]), _softplus(raw[2])
    noise = _softplus(raw[3]) + noise_floor
    mean = np.full(q, np.nan)
    kmat = np.empty((n, n))
    for i in range(n):
        kmat[i, i] = s + noise
        for j in range(i):
            d = 0.0
            for t in range(k):
                e = (z_train[i, t] - z_train[j, t]) / ls
                d += e * e
            kmat[i, j] = s * math.exp(-0.5 * d)
            kmat[j, i] = kmat[i, j]
    chol = np.empty((n, n))
    if not jittered_cholesky(kmat, chol, np.zeros(len(JITTER), dtype=np.int64)):
        return NOT_PD, mean
    r = np.empty(n)
    for i in range(n):
        r[i] = y[i] - c
    alpha = np.empty(n)
    cho_solve(chol, r, alpha)
    for a in range(q):
        acc = c
        for i in range(n):
            d = 0.0
            for t in range(k):
                e = (z_train[i, t] - z_query[a, t]) / ls
                d += e * e
            acc += alpha[i] * s * math.exp(-0.5 * d)
        mean[a] = acc
    return OK, mean
