"""Whole fits of the deep-kernel GP in one compiled call (numba): :class:`CompiledFit`.

The same model, the same Adam steps and the same dropout draws as :class:`surrogates.fused.FusedFit`
(which stays the path without numba and the oracle of ``tests/surrogates/test_compiled.py``), computed by
``surrogates.jit_kernels`` in the model's dtype (float32 by default): the loop over a fit's steps runs inside
one compiled function, so a step costs its arithmetic rather than ~60-170 torch dispatches. Above
:data:`MAX_ROWS` observations torch's fused fit is faster (its BLAS and LAPACK are), and
``DeepKernelGP.fit`` uses that instead (:func:`prefers`).

BLAS and LAPACK run on one thread inside a fit (``threadpoolctl``): the matrices are tens to hundreds of
rows, where a thread team's start-up costs more than the product (measured 4x slower at 10 observations).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from surrogates.data import Batch
from surrogates.fused import dyhpo_parameters, gp_hyperparameters, quicktune_parameters, supports
from surrogates.likelihood import NotPositiveDefiniteError
from surrogates.nets import DyHPOExtractor, QuickTuneExtractor

jit_kernels: Any  # the module (numba-compiled functions are untyped for mypy), or None without numba
_PERFORMANCE_WARNING: Any = None
try:
    from numba.core.errors import NumbaPerformanceWarning as _PERFORMANCE_WARNING

    from surrogates import jit_kernels
except ImportError:  # numba absent: DeepKernelGP.fit uses FusedFit
    jit_kernels = None

_BLAS_LIMIT: Any = None

MAX_ROWS: dict[type, int] = {DyHPOExtractor: 160, QuickTuneExtractor: 250}
"""Fits of more observations run as ``surrogates.fused.FusedFit``, whose BLAS and LAPACK are faster on larger
matrices. One float32 Adam step, compiled vs fused (2-core Xeon, one thread): DyHPO (128 GP features) 2.0x
at 100 observations, 1.3x at 150, 0.9x at 200, 0.8x at 250; Quick-Tune (32 features) 2.5x, 1.6x, 1.5x,
1.5x (not measured above 250)."""


def prefers(model: Any, n: int) -> bool:
    """Whether a fit of ``model`` on ``n`` observations should be compiled (numba present, supported, small)."""
    return jit_kernels is not None and n <= MAX_ROWS.get(type(getattr(model, "extractor", None)), 0)


def available() -> bool:
    """Whether numba is importable (the compiled fit can run)."""
    return jit_kernels is not None


def _one_blas_thread() -> Any:
    """A context manager limiting BLAS to one thread (the controller is built once per process)."""
    global _BLAS_LIMIT
    if _BLAS_LIMIT is None:
        from threadpoolctl import ThreadpoolController

        _BLAS_LIMIT = ThreadpoolController()
    return _BLAS_LIMIT.limit(limits=1, user_api="blas")


def _aligned(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``a`` whose data starts at a multiple of ``jit_kernels.ALIGNMENT`` bytes (see there)."""
    align = jit_kernels.ALIGNMENT
    buf = np.empty(a.nbytes + align, dtype=np.uint8)
    start = -buf.ctypes.data % align
    out = buf[start : start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def _np(t: torch.Tensor, dtype: torch.dtype) -> np.ndarray:
    return _aligned(t.detach().to(dtype).numpy())


class CompiledFit:
    """One full-batch Adam fit of a ``DeepKernelGP`` on ``batch`` by ``surrogates.jit_kernels``.

    Args:
        model: a ``surrogates.gp.DeepKernelGP`` whose extractor ``surrogates.fused.supports`` accepts
            (trained in place by :meth:`run`).
        batch: the training inputs and targets ``(N, ...)``.
        lr: Adam's learning rate.
    """

    def __init__(self, model: Any, batch: Batch, lr: float):
        if jit_kernels is None:
            raise RuntimeError("the compiled fit needs numba: pip install numba")
        if not supports(model):
            raise TypeError(f"no compiled fit for extractor {type(model.extractor).__name__}; use the autograd fit")
        self.model, self.batch, self.lr = model, batch, float(lr)
        ext = model.extractor
        if isinstance(ext, DyHPOExtractor):
            net = dyhpo_parameters(ext)
        else:
            net = quicktune_parameters(cast(QuickTuneExtractor, ext))
        hyper = gp_hyperparameters(model)
        noise = model.likelihood.noise_covar
        self.params = net + hyper
        if len(self.params) != len(list(model.parameters())) or sum(p.numel() for p in hyper) != 4:
            raise TypeError("the model has parameters the compiled fit does not know; use the autograd fit")
        self.offsets = np.cumsum([0] + [p.numel() for p in self.params[:-4]] + [4]).astype(np.int64)
        self.dtype = self.params[0].dtype
        self.theta = flat_parameters(self.params)
        self.noise_floor = float(noise.raw_noise_constraint.lower_bound)

    def run(self, epochs: int) -> float:
        """``epochs`` Adam steps; on success writes the weights (and BatchNorm statistics) into the model.

        Returns the last loss; a non-finite last loss leaves the model untouched. Raises
        :class:`surrogates.likelihood.NotPositiveDefiniteError` (model untouched) if a kernel matrix stays
        indefinite after gpytorch's largest jitter.
        """
        if epochs <= 0:
            return math.nan
        assert jit_kernels is not None
        ext, batch = self.model.extractor, self.batch
        theta = _aligned(self.theta)
        m, v = _aligned(np.zeros_like(theta)), _aligned(np.zeros_like(theta))
        jitters = np.zeros(len(jit_kernels.JITTER), dtype=np.int64)
        y = _np(batch.y, self.dtype)
        running = None
        with _one_blas_thread(), warnings.catch_warnings():
            # numba's first-call compile hints that np.dot is faster on contiguous arrays: the likelihood's
            # (N, N) blocks of its scratch array are slices to numba; writing them otherwise changes the BLAS
            # call and so the float32 rounding of every replay (the committed results' numerics are these).
            warnings.simplefilter("ignore", _PERFORMANCE_WARNING)
            if isinstance(ext, DyHPOExtractor):
                bn = ext.bn
                running = _np(torch.stack([bn.running_mean, bn.running_var]), self.dtype)  # type: ignore[list-item]
                shapes = np.array([ext.fc1.out_features, ext.conv.out_channels, ext.fc2.out_features])
                x1 = _np(torch.cat([batch.x, batch.budget], dim=1), self.dtype)
                curve = _np(batch.curve, self.dtype)
                win = _aligned(np.lib.stride_tricks.sliding_window_view(curve, 3, axis=1))
                status, loss, _ = jit_kernels.dyhpo_fit(
                    theta, m, v, 0, epochs, self.lr, shapes, x1, win, y, running, float(bn.momentum or 0.0),
                    float(bn.eps), self.noise_floor, jitters,
                )  # fmt: skip
            else:
                qt = cast(QuickTuneExtractor, ext)
                cc = qt.curve_encoder
                hidden = cast(nn.Linear, qt.model_encoder[0]).out_features
                shapes = np.array([hidden, cc.conv1.out_channels, cc.fc.out_features, qt.head.out_features,
                                   int(qt.meta_encoder is not None)])  # fmt: skip
                inputs = [_np(t, self.dtype) for t in (batch.x[:, : qt.n_model], batch.x[:, qt.n_model :],
                                                        batch.budget, batch.curve, batch.meta)]  # fmt: skip
                status, loss, _ = jit_kernels.quicktune_fit(
                    theta, m, v, 0, epochs, self.lr, self.offsets, shapes, *inputs, y,
                    self._dropout_scales(cc, epochs, len(batch)), self.noise_floor, jitters,
                )  # fmt: skip
        for jitter, count in zip(jit_kernels.JITTER, jitters.tolist(), strict=True):
            if count:
                warnings.warn(f"kernel matrix not p.d., added jitter of {jitter:.1e} to the diagonal", stacklevel=2)
        if status == jit_kernels.NAN:
            raise NotPositiveDefiniteError("kernel matrix has NaN entries")
        if status == jit_kernels.NOT_PD:
            largest = jit_kernels.JITTER[-1]
            raise NotPositiveDefiniteError(f"kernel matrix not positive definite after adding jitter {largest:.0e}")
        if math.isfinite(loss):
            self._write_back(theta, running, epochs)
        return float(loss)

    def _dropout_scales(self, cc: Any, epochs: int, n: int) -> np.ndarray:
        """``(epochs, N, C)`` dropout scales of the curve encoder: the draws ``FusedFit`` makes, step by step."""
        ch, dtype = cc.conv1.out_channels, cc.conv1.weight.dtype
        return _aligned(np.stack([dropout_scales(cc.dropout, n, ch, dtype) for _ in range(epochs)]))

    def _write_back(self, theta: np.ndarray, running: np.ndarray | None, epochs: int) -> None:
        write_parameters(self.params, theta)
        if running is not None:
            with torch.no_grad():
                bn = self.model.extractor.bn
                bn.running_mean.copy_(torch.from_numpy(running[0]))
                bn.running_var.copy_(torch.from_numpy(running[1]))
                bn.num_batches_tracked.add_(epochs)


def flat_parameters(params: Sequence[torch.Tensor]) -> np.ndarray:
    """The parameters' values concatenated into one aligned flat array (in the first one's dtype)."""
    dtype = params[0].dtype
    return _aligned(np.concatenate([p.detach().to(dtype).numpy().reshape(-1) for p in params]))


def write_parameters(params: Sequence[torch.Tensor], theta: np.ndarray) -> None:
    """Copies the flat ``theta`` (as :func:`flat_parameters` lays it out) back into ``params``."""
    with torch.no_grad():
        offset = 0
        for p in params:
            k = p.numel()
            p.copy_(torch.from_numpy(theta[offset : offset + k]).view_as(p))
            offset += k


def dropout_scales(drop: Any, n: int, ch: int, dtype: torch.dtype) -> np.ndarray:
    """``(n, ch)`` scales of one forward pass of a ``surrogates.nets.GeneratorDropout1d``: its draw from its generator
    (0 or ``1/(1-p)``), ones when it is off."""
    if not (drop.training and drop.p > 0):
        return torch.ones(n, ch, dtype=dtype).numpy()
    keep = torch.rand(n, ch, 1, generator=getattr(drop, "generator", None), dtype=dtype) >= drop.p
    return (keep.squeeze(2).to(dtype) / (1.0 - drop.p)).numpy()
