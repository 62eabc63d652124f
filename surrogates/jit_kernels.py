# mypy: disable-error-code="call-overload"
"""Numba-compiled full-batch fits of the deep-kernel GP: a whole fit (all its Adam steps) in one compiled call.

At the sizes Bayesian optimisation fits (tens to a few hundred observations) an Adam step of
:class:`surrogates.fused.FusedFit` is ~60-100 small torch operations, each costing its dispatch
overhead (5-15 us on a 2-core machine) rather than arithmetic. Here the same step, for the same
model, is written as loops and small matrix products compiled by numba, and the loop over the fit's
steps runs inside the compiled function, so a fit costs one Python call.

Every function takes the flat parameter vector ``theta`` (the parameter order of
``surrogates.fused``: the extractor's weights and biases, then the GP's raw mean, outputscale,
lengthscale and noise), writes its gradient into ``grad`` and updates ``theta`` by Adam (the update
of torch's ``Adam``, element by element). Arrays are float32 or float64, as the model's parameters
(float32 by default, as the reference code); scalar reductions accumulate in float64.

Status codes returned by the fits: ``0`` success, ``1`` the kernel matrix stayed indefinite after the
largest jitter (the caller raises ``NotPositiveDefiniteError``), ``2`` NaN in the kernel matrix.
"""

from __future__ import annotations

import math
from typing import Any

import llvmlite.binding as llvm
import numpy as np
from numba import njit, types
from numba.core.base import BaseContext
from numba.extending import get_cython_function_address

from surrogates.fused import _BETAS, _EPS, _LEAKY
from surrogates.likelihood import _JITTER, _LOG_2PI

JITTER = _JITTER  # gpytorch's float32 cholesky_jitter, 3 tries
LEAKY = _LEAKY
(BETA1, BETA2), EPS = _BETAS, _EPS
LOG_2PI = _LOG_2PI
OK, NOT_PD, NAN = 0, 1, 2
_FAST = {"reassoc", "arcp", "nsz"}
"""LLVM fast-math flags of every kernel. Not "nnan" / "ninf": the NaN checks must stay. Not "contract": with
fused multiply-adds allowed, kernels compiled in the process and the same kernels loaded from numba's cache
rounded differently, so a GP replay's trajectory depended on whether its worker compiled them
(tests/surrogates/test_compiled_cache.py; bisected with it: contraction in ``gp_nll_grad`` alone suffices to
break it, in the other kernels it did not; benchmarks/RESULTS.md, session 11)."""

ALIGNMENT = 64
"""Bytes to which every array of a compiled fit is aligned: the ones numba allocates (below) and the inputs
(``surrogates.compiled``), so that where the allocator happens to place them cannot change how BLAS kernels with
64-byte vectors (OpenBLAS on AVX-512) round. (Numba aligns to 32 bytes by default, numpy to 16.) What did make
float32 fits differ between processes was another matter: FMA contraction (see ``_FAST``)."""


def _preferred_alignment(context: Any, ty: Any) -> int:
    return ALIGNMENT


# Every array numba allocates (np.empty, np.dot's result, ...) in this process starts at a multiple of
# ALIGNMENT bytes (numba's default is 32; ``BaseContext.get_preferred_array_alignment``). Set before any
# function here compiles; cached machine code holds the constant, and editing this file invalidates the cache.
BaseContext.get_preferred_array_alignment = _preferred_alignment  # type: ignore[method-assign]


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def _softplus(x: float) -> float:
    return x if x > 20.0 else math.log1p(math.exp(x))


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _external(name: str) -> types.ExternalFunction:
    """SciPy's LAPACK routine ``name`` (uplo, n, a, lda, info) as a symbol compiled code can call and cache."""
    symbol = f"metagen_{name}"
    llvm.add_symbol(symbol, get_cython_function_address("scipy.linalg.cython_lapack", name))
    return types.ExternalFunction(symbol, types.void(*(types.voidptr,) * 5))


_dpotrf, _dpotri, _spotrf, _spotri = (_external(f) for f in ("dpotrf", "dpotri", "spotrf", "spotri"))


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def _lapack(fn: int, a: np.ndarray) -> int:
    """Runs LAPACK's ``dpotrf`` (``fn`` 0) or ``dpotri`` (1) in place on the lower triangle of C-ordered ``a``.

    A C-ordered array is its transpose in Fortran order, so LAPACK's upper triangle is ``a``'s lower one.
    Returns LAPACK's ``info`` (0: success).
    """
    n = a.shape[0]
    uplo = np.array([ord("U")], dtype=np.uint8)
    size = np.array([n], dtype=np.int32)
    info = np.zeros(1, dtype=np.int32)
    single = a.itemsize == 4
    if fn == 0 and single:
        _spotrf(uplo.ctypes, size.ctypes, a.ctypes, size.ctypes, info.ctypes)
    elif fn == 0:
        _dpotrf(uplo.ctypes, size.ctypes, a.ctypes, size.ctypes, info.ctypes)
    elif single:
        _spotri(uplo.ctypes, size.ctypes, a.ctypes, size.ctypes, info.ctypes)
    else:
        _dpotri(uplo.ctypes, size.ctypes, a.ctypes, size.ctypes, info.ctypes)
    return info[0]


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def _cholesky(a: np.ndarray, out: np.ndarray) -> bool:
    """Lower Cholesky factor of ``a`` ``(n, n)`` into ``out`` (upper part zeroed); ``False`` if not p.d."""
    out[:, :] = a
    if _lapack(0, out) != 0:
        return False
    n = a.shape[0]
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = 0.0
    return True


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def _cholesky_inverse(chol: np.ndarray, out: np.ndarray) -> None:
    """``out = (L L^T)^-1`` from the lower factor ``L`` (both triangles filled)."""
    out[:, :] = chol
    _lapack(1, out)
    n = chol.shape[0]
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i]


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def jittered_cholesky(kmat: np.ndarray, chol: np.ndarray, jitters: np.ndarray) -> bool:
    """Lower Cholesky factor of ``kmat`` ``(n, n)`` into ``chol``, adding gpytorch's jitter (:data:`JITTER`, in
    turn) to ``kmat``'s diagonal while it is not positive definite; ``jitters[i]`` counts uses of ``JITTER[i]``.
    ``False`` if the largest jitter did not help."""
    n = kmat.shape[0]
    ok = _cholesky(kmat, chol)
    previous = 0.0
    t = 0
    while not ok and t < len(JITTER):
        for i in range(n):
            kmat[i, i] += JITTER[t] - previous
        previous = JITTER[t]
        jitters[t] += 1
        ok = _cholesky(kmat, chol)
        t += 1
    return ok


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def cho_solve(chol: np.ndarray, r: np.ndarray, out: np.ndarray) -> None:
    """``out = (L L^T)^-1 r`` from the lower factor ``L`` ``(n, n)`` by two triangular solves."""
    n = chol.shape[0]
    for i in range(n):
        acc = r[i]
        for q in range(i):
            acc -= chol[i, q] * out[q]
        out[i] = acc / chol[i, i]
    for i in range(n - 1, -1, -1):
        acc = out[i]
        for q in range(i + 1, n):
            acc -= chol[q, i] * out[q]
        out[i] = acc / chol[i, i]


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def gp_nll_grad(
    z: np.ndarray, y: np.ndarray, raw: np.ndarray, noise_floor: float, d_z: np.ndarray, d_raw: np.ndarray,
    scratch: np.ndarray, jitters: np.ndarray,
) -> tuple[int, float]:  # fmt: skip
    """Loss of ``surrogates.likelihood.exact_nll`` and its gradient in ``z`` ``(N, k)`` and the raw hyperparameters.

    ``raw`` ``(4,)``: raw mean, outputscale, lengthscale, noise (gpytorch's softplus constraints, the noise
    floored at ``noise_floor``). Writes ``d_z`` ``(N, k)`` and ``d_raw`` ``(4,)``; ``scratch`` is
    ``(4, N, N)`` in ``z``'s dtype; ``jitters[i]`` counts how often ``JITTER[i]`` was needed. Returns (status, loss).
    """
    n, k = z.shape
    c = raw[0]
    s = _softplus(raw[1])
    ls = _softplus(raw[2])
    v = _softplus(raw[3]) + noise_floor
    kf, kmat, chol, inv = scratch[0, :n, :n], scratch[1, :n, :n], scratch[2, :n, :n], scratch[3, :n, :n]
    zc = np.empty((n, k), dtype=z.dtype)
    for j in range(k):
        m = 0.0
        for i in range(n):
            m += z[i, j] / ls
        m /= n
        for i in range(n):
            zc[i, j] = z[i, j] / ls - m
    gram = np.dot(zc, zc.T)
    for i in range(n):
        kf[i, i] = s
        for j in range(i):
            d = max(gram[i, i] + gram[j, j] - 2.0 * gram[i, j], 0.0)
            e = s * math.exp(-0.5 * d)
            kf[i, j] = e
            kf[j, i] = e
    for i in range(n):
        for j in range(n):
            if not np.isfinite(kf[i, j]):
                return NAN, math.nan
            kmat[i, j] = kf[i, j]
        kmat[i, i] += v
    if not jittered_cholesky(kmat, chol, jitters):
        return NOT_PD, math.nan
    r = np.empty(n, dtype=z.dtype)
    for i in range(n):
        r[i] = y[i] - c
    alpha = np.empty(n, dtype=z.dtype)
    cho_solve(chol, r, alpha)
    loss = 0.0
    for i in range(n):
        loss += 0.5 * r[i] * alpha[i] + math.log(chol[i, i])
    loss = (loss + 0.5 * n * LOG_2PI) / n
    _cholesky_inverse(chol, inv)
    half = 0.5 / n
    d_v = 0.0
    d_s = 0.0
    rowsum = np.zeros(n)
    for i in range(n):  # inv becomes W = (K^-1 - a a^T) / (2N) * Kf
        d_v += (inv[i, i] - alpha[i] * alpha[i]) * half
        for j in range(n):
            w = (inv[i, j] - alpha[i] * alpha[j]) * half * kf[i, j]
            inv[i, j] = w
            d_s += w
            rowsum[i] += w
    d_s /= s
    wz = np.dot(inv, zc)
    d_ls = 0.0
    for i in range(n):
        for q in range(k):
            g = -2.0 * (zc[i, q] * rowsum[i] - wz[i, q])
            d_ls -= g * zc[i, q]
            d_z[i, q] = g / ls
    d_ls /= ls
    d_c = 0.0
    for i in range(n):
        d_c -= alpha[i]
    d_raw[0] = d_c / n
    d_raw[1] = d_s * _sigmoid(raw[1])
    d_raw[2] = d_ls * _sigmoid(raw[2])
    d_raw[3] = d_v * _sigmoid(raw[3])
    return OK, loss


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def adam(theta: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, step: int, lr: float) -> None:
    """One Adam step (torch's ``Adam`` update, no weight decay) of ``theta`` in place; ``step`` counts from 1."""
    bc1 = 1.0 - BETA1**step
    bc2 = math.sqrt(1.0 - BETA2**step)
    size = lr / bc1
    for i in range(theta.shape[0]):
        g = grad[i]
        m[i] += (g - m[i]) * (1.0 - BETA1)
        v[i] = BETA2 * v[i] + (1.0 - BETA2) * g * g
        theta[i] -= size * m[i] / (math.sqrt(v[i]) / bc2 + EPS)


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def _linear(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``x @ w.T + b``: ``(N, i)`` x ``(o, i)`` -> ``(N, o)``."""
    out = np.dot(x, w.T)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] += b[j]
    return out


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def _linear_backward(d: np.ndarray, x: np.ndarray, gw: np.ndarray, gb: np.ndarray) -> None:
    """Weight and bias gradients of :func:`_linear` from the output gradient ``d`` ``(N, o)``."""
    gw[:, :] = np.dot(d.T, x)
    for j in range(d.shape[1]):
        acc = 0.0
        for i in range(d.shape[0]):
            acc += d[i, j]
        gb[j] = acc


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def _head_likelihood(
    out: np.ndarray, y: np.ndarray, raw: np.ndarray, noise_floor: float, d_out: np.ndarray, d_raw: np.ndarray,
    scratch: np.ndarray, jitters: np.ndarray,
) -> tuple[int, float]:  # fmt: skip
    """LeakyReLU of the extractor's last linear output ``out`` ``(N, K)`` -> :func:`gp_nll_grad`; writes the
    gradient in ``out`` into ``d_out`` and in the raw hyperparameters into ``d_raw``. Returns (status, loss)."""
    n, k = out.shape
    z = np.empty_like(out)
    for i in range(n):
        for j in range(k):
            z[i, j] = out[i, j] if out[i, j] > 0 else LEAKY * out[i, j]
    grad_raw = np.empty(4)
    status, loss = gp_nll_grad(z, y, raw, noise_floor, d_out, grad_raw, scratch, jitters)
    if status != OK:
        return status, loss
    for q in range(4):
        d_raw[q] = grad_raw[q]
    for i in range(n):
        for j in range(k):
            if out[i, j] <= 0:
                d_out[i, j] *= LEAKY
    return OK, loss


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def dyhpo_fit(
    theta: np.ndarray, m: np.ndarray, v: np.ndarray, step0: int, epochs: int, lr: float, shapes: np.ndarray,
    x1: np.ndarray, win: np.ndarray, y: np.ndarray, running: np.ndarray, momentum: float, bn_eps: float,
    noise_floor: float, jitters: np.ndarray,
) -> tuple[int, float, int]:  # fmt: skip
    """``epochs`` Adam steps of DyHPO's deep-kernel GP (``surrogates.nets.DyHPOExtractor``).

    ``shapes`` = (hidden H, channels C, out K); ``x1`` ``(N, D+1)`` pipeline and budget; ``win`` ``(N, L, 3)``
    curve windows; ``y`` ``(N,)``; ``running`` ``(2, H)`` BatchNorm running mean and variance (updated).
    Returns (status, last loss, steps done).
    """
    n, d1 = x1.shape
    hid, ch, kout = shapes[0], shapes[1], shapes[2]
    length = win.shape[1]
    grad = np.zeros_like(theta)
    o = 0
    w1 = theta[o : o + hid * d1].reshape(hid, d1)
    gw1 = grad[o : o + hid * d1].reshape(hid, d1)
    o += hid * d1
    b1, gb1 = theta[o : o + hid], grad[o : o + hid]
    o += hid
    gamma, ggamma = theta[o : o + hid], grad[o : o + hid]
    o += hid
    beta, gbeta = theta[o : o + hid], grad[o : o + hid]
    o += hid
    wc = theta[o : o + ch * 3].reshape(ch, 3)
    gwc = grad[o : o + ch * 3].reshape(ch, 3)
    o += ch * 3
    bc, gbc = theta[o : o + ch], grad[o : o + ch]
    o += ch
    w2 = theta[o : o + kout * (hid + ch)].reshape(kout, hid + ch)
    gw2 = grad[o : o + kout * (hid + ch)].reshape(kout, hid + ch)
    o += kout * (hid + ch)
    b2, gb2 = theta[o : o + kout], grad[o : o + kout]
    o += kout
    raw, graw = theta[o : o + 4], grad[o : o + 4]
    scratch = np.empty((4, n, n), dtype=theta.dtype)
    d_z = np.empty((n, kout), dtype=theta.dtype)
    h = np.empty((n, hid + ch), dtype=theta.dtype)
    xhat = np.empty((n, hid), dtype=theta.dtype)
    mean = np.empty(hid)
    invstd = np.empty(hid)
    idx = np.empty((n, ch), dtype=np.int64)
    loss = math.nan
    for it in range(epochs):
        h1 = _linear(x1, w1, b1)
        for j in range(hid):  # training-mode BatchNorm
            mu = 0.0
            for i in range(n):
                mu += h1[i, j]
            mu /= n
            var = 0.0
            for i in range(n):
                var += (h1[i, j] - mu) ** 2
            var /= n
            mean[j] = mu
            invstd[j] = 1.0 / math.sqrt(var + bn_eps)
            running[0, j] = (1.0 - momentum) * running[0, j] + momentum * mu
            running[1, j] = (1.0 - momentum) * running[1, j] + momentum * var * n / (n - 1)
            for i in range(n):
                xhat[i, j] = (h1[i, j] - mu) * invstd[j]
                h2 = xhat[i, j] * gamma[j] + beta[j]
                h[i, j] = h2 if h2 > 0 else LEAKY * h2
        for i in range(n):  # convolution (no padding) and global max-pool; the bias after the max
            for c in range(ch):
                best = -np.inf
                arg = 0
                for t in range(length):
                    val = win[i, t, 0] * wc[c, 0] + win[i, t, 1] * wc[c, 1] + win[i, t, 2] * wc[c, 2]
                    if val > best:
                        best = val
                        arg = t
                idx[i, c] = arg
                h[i, hid + c] = best + bc[c]
        out = _linear(h, w2, b2)
        status, loss = _head_likelihood(out, y, raw, noise_floor, d_z, graw, scratch, jitters)
        if status != OK:
            return status, loss, it
        _linear_backward(d_z, h, gw2, gb2)
        dh = np.dot(d_z, w2)
        for i in range(n):
            for j in range(hid):
                pre = xhat[i, j] * gamma[j] + beta[j]
                if pre <= 0:
                    dh[i, j] *= LEAKY
        d_h1 = np.empty((n, hid), dtype=theta.dtype)
        for j in range(hid):  # BatchNorm backward (training mode)
            sd = 0.0
            sdx = 0.0
            for i in range(n):
                sd += dh[i, j]
                sdx += dh[i, j] * xhat[i, j]
            ggamma[j] = sdx
            gbeta[j] = sd
            scale = gamma[j] * invstd[j] / n
            for i in range(n):
                d_h1[i, j] = scale * (n * dh[i, j] - sd - xhat[i, j] * sdx)
        _linear_backward(d_h1, x1, gw1, gb1)
        for c in range(ch):
            a0 = 0.0
            a1 = 0.0
            a2 = 0.0
            bsum = 0.0
            for i in range(n):
                g = dh[i, hid + c]
                t = idx[i, c]
                a0 += win[i, t, 0] * g
                a1 += win[i, t, 1] * g
                a2 += win[i, t, 2] * g
                bsum += g
            gwc[c, 0] = a0
            gwc[c, 1] = a1
            gwc[c, 2] = a2
            gbc[c] = bsum
        adam(theta, grad, m, v, step0 + it + 1, lr)
    return OK, loss, epochs


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def _view(theta: np.ndarray, offsets: np.ndarray, i: int, rows: int) -> np.ndarray:
    """Parameter ``i`` of the flat vector as a ``(rows, -1)`` matrix (a view)."""
    part = theta[offsets[i] : offsets[i + 1]]
    return part.reshape(rows, part.shape[0] // rows)


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def _relu_(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(-1)
    for i in range(flat.shape[0]):
        if flat[i] < 0:
            flat[i] = 0.0
    return x


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def _mask_relu_(d: np.ndarray, act: np.ndarray) -> np.ndarray:
    """``d`` where ``act > 0``, else 0 (the ReLU's backward from its output), in place."""
    fd, fa = d.reshape(-1), act.reshape(-1)
    for i in range(fd.shape[0]):
        if fa[i] <= 0:
            fd[i] = 0.0
    return d


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def _group_backward(
    dh: np.ndarray, j: int, hid: int, x: np.ndarray, hidden: np.ndarray, w2: np.ndarray, grad: np.ndarray,
    offsets: np.ndarray,
) -> None:  # fmt: skip
    """Gradients of Quick-Tune's group encoder ``j`` (parameters ``4j..4j+3``) from the head's input gradient."""
    d = np.ascontiguousarray(dh[:, j * hid : (j + 1) * hid])
    _linear_backward(d, hidden, _view(grad, offsets, 4 * j + 2, hid), grad[offsets[4 * j + 3] : offsets[4 * j + 4]])
    d1 = _mask_relu_(np.dot(d, w2), hidden)
    _linear_backward(d1, x, _view(grad, offsets, 4 * j, hid), grad[offsets[4 * j + 1] : offsets[4 * j + 2]])


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def curve_workspace(n: int, length: int, ch: int, like: np.ndarray) -> tuple:
    """Buffers of :func:`curve_forward` / :func:`curve_backward` for ``n`` curves of ``length`` epochs and ``ch``
    channels, in ``like``'s dtype: (padded curve ``(n, E+2)``, conv1 output ``(n, E+2, C)``, conv2 windows
    ``(n E, 3C)``, pool choice ``(n, C, E//2)``, flattened pool ``(n, C E//2)``, conv2 gradient ``(n E, C)``,
    conv1 gradient ``(n, E+2, C)``)."""
    dtype = like.dtype
    half = length // 2
    return (
        np.zeros((n, length + 2), dtype=dtype), np.zeros((n, length + 2, ch), dtype=dtype),
        np.empty((n * length, 3 * ch), dtype=dtype), np.empty((n, ch, half), dtype=np.int64),
        np.empty((n, ch * half), dtype=dtype), np.zeros((n * length, ch), dtype=dtype),
        np.empty((n, length + 2, ch), dtype=dtype),
    )  # fmt: skip


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def curve_forward(
    curve: np.ndarray, wc1: np.ndarray, bc1: np.ndarray, wc2: np.ndarray, bc2: np.ndarray, scales: np.ndarray, ws: tuple
) -> np.ndarray:
    """``surrogates.nets.CurveConv`` up to its dense layer: same-padded conv1 -> ReLU -> same-padded conv2 ->
    max-pool(2) -> dropout (``scales`` ``(N, C)``: 0 or ``1/(1-p)``, ones in eval mode) -> ReLU, flattened in
    (channel, position) order: ``(N, E)`` -> ``(N, C E//2)`` (the workspace's ``flat``). ``wc1`` ``(C, 3)``,
    ``wc2`` ``(C, 3C)`` in (input channel, offset) order; ``ws`` from :func:`curve_workspace`."""
    padded, c1, win2, pool_at, flat = ws[0], ws[1], ws[2], ws[3], ws[4]
    n, length = curve.shape
    ch = wc1.shape[0]
    half = length // 2
    padded[:, 1 : length + 1] = curve
    for i in range(n):
        for t in range(length):
            for c in range(ch):
                acc = bc1[c] + padded[i, t] * wc1[c, 0] + padded[i, t + 1] * wc1[c, 1]
                acc += padded[i, t + 2] * wc1[c, 2]
                c1[i, t + 1, c] = acc if acc > 0 else 0.0
    for i in range(n):  # conv2 as one product over the windows of conv1's output, (channel, offset) order
        for t in range(length):
            for q in range(ch):
                for k in range(3):
                    win2[i * length + t, 3 * q + k] = c1[i, t + k, q]
    c2 = _linear(win2, wc2, bc2)  # (N*E, C)
    for i in range(n):  # max-pool(2), dropout, ReLU; flattened (channel, position)
        for c in range(ch):
            sc = scales[i, c]
            for j in range(half):
                a, b = c2[i * length + 2 * j, c], c2[i * length + 2 * j + 1, c]
                pick = 1 if b > a else 0
                pool_at[i, c, j] = pick
                val = (b if pick else a) * sc
                flat[i, c * half + j] = val if val > 0 else 0.0
    return flat


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def curve_backward(
    d_flat: np.ndarray, wc2: np.ndarray, scales: np.ndarray, ws: tuple, gwc1: np.ndarray, gbc1: np.ndarray,
    gwc2: np.ndarray, gbc2: np.ndarray,
) -> None:  # fmt: skip
    """Gradients of :func:`curve_forward`'s convolutions from ``d_flat`` ``(N, C E//2)`` (already masked by the
    final ReLU), using the workspace of the forward pass; writes ``gwc1`` ``(C, 3)``, ``gbc1``, ``gwc2``
    ``(C, 3C)``, ``gbc2``."""
    padded, c1, win2, pool_at, d_c2, d_c1 = ws[0], ws[1], ws[2], ws[3], ws[5], ws[6]
    n = d_flat.shape[0]
    length = padded.shape[1] - 2
    ch = gwc1.shape[0]
    half = length // 2
    d_c2[:] = 0.0
    for i in range(n):
        for c in range(ch):
            sc = scales[i, c]
            for j in range(half):
                d_c2[i * length + 2 * j + pool_at[i, c, j], c] = d_flat[i, c * half + j] * sc
    _linear_backward(d_c2, win2, gwc2, gbc2)
    d_win2 = np.dot(d_c2, wc2)  # (N*E, 3C)
    d_c1[:] = 0.0
    for i in range(n):
        for t in range(length):
            for q in range(ch):
                for k in range(3):
                    d_c1[i, t + k, q] += d_win2[i * length + t, 3 * q + k]
    gwc1[:] = 0.0
    gbc1[:] = 0.0
    for i in range(n):
        for t in range(length):
            for c in range(ch):
                if c1[i, t + 1, c] <= 0:
                    continue
                g = d_c1[i, t + 1, c]
                gbc1[c] += g
                for k in range(3):
                    gwc1[c, k] += g * padded[i, t + k]


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def _quicktune_forward(
    theta: np.ndarray, offsets: np.ndarray, shapes: np.ndarray, xm: np.ndarray, xh: np.ndarray, budget: np.ndarray,
    curve: np.ndarray, meta: np.ndarray, scales: np.ndarray, ws: tuple,
) -> tuple:  # fmt: skip
    """Quick-Tune's kernel network up to its last linear layer (before the LeakyReLU): returns (model hidden
    ``m1``, hyperparameter hidden ``p1``, curve features ``f``, head input ``h``, head output ``out`` ``(N, K)``)."""
    n = curve.shape[0]
    hid, ch, fdim, kout, use_meta = shapes[0], shapes[1], shapes[2], shapes[3], shapes[4]
    wm1, bm1, wm2, bm2 = (_view(theta, offsets, 0, hid), theta[offsets[1] : offsets[2]],
                          _view(theta, offsets, 2, hid), theta[offsets[3] : offsets[4]])  # fmt: skip
    wh1, bh1, wh2, bh2 = (_view(theta, offsets, 4, hid), theta[offsets[5] : offsets[6]],
                          _view(theta, offsets, 6, hid), theta[offsets[7] : offsets[8]])  # fmt: skip
    wf, bf = _view(theta, offsets, 12, fdim), theta[offsets[13] : offsets[14]]
    wo, bo = _view(theta, offsets, 14, kout), theta[offsets[15] : offsets[16]]
    m1 = _relu_(_linear(xm, wm1, bm1))
    p1 = _relu_(_linear(xh, wh1, bh1))
    flat = curve_forward(curve, _view(theta, offsets, 8, ch), theta[offsets[9] : offsets[10]],
                         _view(theta, offsets, 10, ch), theta[offsets[11] : offsets[12]], scales, ws)  # fmt: skip
    f = _relu_(_linear(flat, wf, bf))
    width = 2 * hid + 1 + fdim + (4 if use_meta else 0)
    h = np.empty((n, width), dtype=theta.dtype)
    h[:, :hid] = _linear(m1, wm2, bm2)
    h[:, hid : 2 * hid] = _linear(p1, wh2, bh2)
    h[:, 2 * hid : 2 * hid + 1] = budget
    h[:, 2 * hid + 1 : 2 * hid + 1 + fdim] = f
    if use_meta:
        h[:, 2 * hid + 1 + fdim :] = _linear(meta, _view(theta, offsets, 16, 4), theta[offsets[17] : offsets[18]])
    return m1, p1, f, h, _linear(h, wo, bo)


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def quicktune_grad(
    theta: np.ndarray, grad: np.ndarray, offsets: np.ndarray, shapes: np.ndarray, xm: np.ndarray, xh: np.ndarray,
    budget: np.ndarray, curve: np.ndarray, meta: np.ndarray, y: np.ndarray, scales: np.ndarray, noise_floor: float,
    jitters: np.ndarray, ws: tuple,
) -> tuple[int, float]:  # fmt: skip
    """Loss (the GP's NLL per point) and gradient ``grad`` of Quick-Tune's deep-kernel GP at ``theta`` (arguments as
    :func:`quicktune_fit`, ``scales`` ``(N, C)`` of this step; ``ws`` from :func:`curve_workspace`). Returns
    (status, loss); ``grad`` is complete only when the status is ``OK``."""
    n = curve.shape[0]
    hid, ch, fdim, kout, use_meta = shapes[0], shapes[1], shapes[2], shapes[3], shapes[4]
    last = 18 if use_meta else 16
    raw, graw = theta[offsets[last] : offsets[last] + 4], grad[offsets[last] : offsets[last] + 4]
    m1, p1, f, h, out = _quicktune_forward(theta, offsets, shapes, xm, xh, budget, curve, meta, scales, ws)
    d_z = np.empty((n, kout), dtype=theta.dtype)
    scratch = np.empty((4, n, n), dtype=theta.dtype)
    status, loss = _head_likelihood(out, y, raw, noise_floor, d_z, graw, scratch, jitters)
    if status != OK:
        return status, loss
    _linear_backward(d_z, h, _view(grad, offsets, 14, kout), grad[offsets[15] : offsets[16]])
    dh = np.dot(d_z, _view(theta, offsets, 14, kout))
    if use_meta:
        _linear_backward(np.ascontiguousarray(dh[:, 2 * hid + 1 + fdim :]), meta, _view(grad, offsets, 16, 4),
                         grad[offsets[17] : offsets[18]])  # fmt: skip
    _group_backward(dh, 0, hid, xm, m1, _view(theta, offsets, 2, hid), grad, offsets)  # Linear -> ReLU -> Linear
    _group_backward(dh, 1, hid, xh, p1, _view(theta, offsets, 6, hid), grad, offsets)
    d_f = _mask_relu_(np.ascontiguousarray(dh[:, 2 * hid + 1 : 2 * hid + 1 + fdim]), f)
    _linear_backward(d_f, ws[4], _view(grad, offsets, 12, fdim), grad[offsets[13] : offsets[14]])
    d_flat = _mask_relu_(np.dot(d_f, _view(theta, offsets, 12, fdim)), ws[4])
    curve_backward(d_flat, _view(theta, offsets, 10, ch), scales, ws, _view(grad, offsets, 8, ch),
                   grad[offsets[9] : offsets[10]], _view(grad, offsets, 10, ch),
                   grad[offsets[11] : offsets[12]])  # fmt: skip
    return OK, loss


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def quicktune_fit(
    theta: np.ndarray, m: np.ndarray, v: np.ndarray, step0: int, epochs: int, lr: float, offsets: np.ndarray,
    shapes: np.ndarray, xm: np.ndarray, xh: np.ndarray, budget: np.ndarray, curve: np.ndarray, meta: np.ndarray,
    y: np.ndarray, scales: np.ndarray, noise_floor: float, jitters: np.ndarray,
) -> tuple[int, float, int]:  # fmt: skip
    """``epochs`` Adam steps of Quick-Tune's deep-kernel GP (``surrogates.nets.QuickTuneExtractor``).

    ``offsets`` ``(P+1,)``: start of each parameter in ``theta`` (order of ``surrogates.fused.quicktune_parameters``,
    then the GP's 4 raw scalars); ``shapes`` = (hidden, channels C, curve dim F, out K, use_meta);
    inputs ``xm`` ``(N, M)``, ``xh`` ``(N, D-M)``, ``budget`` ``(N, 1)``, ``curve`` ``(N, E)``, ``meta`` ``(N, 4)``,
    ``y`` ``(N,)``; ``scales`` ``(epochs, N, C)``: the curve encoder's dropout scale per step (0 or ``1/(1-p)``;
    ones without dropout). Returns (status, last loss, steps done).
    """
    n, length = curve.shape
    grad = np.zeros_like(theta)
    ws = curve_workspace(n, length, shapes[1], theta)
    loss = math.nan
    for it in range(epochs):
        status, loss = quicktune_grad(theta, grad, offsets, shapes, xm, xh, budget, curve, meta, y, scales[it],
                                      noise_floor, jitters, ws)  # fmt: skip
        if status != OK:
            return status, loss, it
        adam(theta, grad, m, v, step0 + it + 1, lr)
    return OK, loss, epochs
