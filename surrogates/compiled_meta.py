"""Quick-Tune's meta-training steps in compiled code (numba): :class:`CompiledMetaStep`.

The same steps as the autograd loop (``surrogates.metatrain.TorchMetaStep``, the path without numba and the oracle
of ``tests/surrogates/test_compiled_meta.py``): the performance GP's Adam step (network at ``lr``, GP
hyperparameters at ``lr * gp_lr_factor``), the cost network's Adam step on the rows with a known cost, the same
dropout draws from the same generators in the same order, and validation by the GP's posterior mean and the cost
network's MSE in evaluation mode. Each is one compiled call (``surrogates.jit_meta``) on flat parameter vectors, so
an iteration costs its arithmetic and a few Python calls instead of ~300 torch dispatches and autograd.

Differences from the autograd loop, by design: a kernel matrix that stays indefinite after gpytorch's jitter
skips that step (counted, one warning at the end) where the autograd loop raises; validation solves in float64.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, cast

import numpy as np
from torch import nn

from surrogates import compiled
from surrogates.cost import CostPredictor
from surrogates.data import Batch, BatchArrays
from surrogates.fused import gp_hyperparameters, quicktune_parameters
from surrogates.gp import DeepKernelGP
from surrogates.nets import GeneratorDropout1d, QuickTuneExtractor

jit_meta: Any = None
if compiled.available():
    from surrogates import jit_meta


def enabled() -> bool:
    """Whether numba is importable, so that meta-training of a Quick-Tune ``DeepKernelGP`` runs compiled."""
    return jit_meta is not None


def available(perf: nn.Module) -> bool:
    """Whether :class:`CompiledMetaStep` can train ``perf`` (numba importable, a Quick-Tune ``DeepKernelGP``)."""
    return enabled() and type(perf) is DeepKernelGP and type(getattr(perf, "extractor", None)) is QuickTuneExtractor


class _Inputs:
    """A batch as aligned numpy arrays in ``dtype``: the Quick-Tune inputs and the cost network's rows.

    Attributes: ``xm`` ``(B, M)``, ``xh`` ``(B, D-M)``, ``budget`` ``(B, 1)``, ``curve`` ``(B, E)``, ``meta``
    ``(B, 4)``, ``y`` ``(B,)``; ``cost_rows`` (x, budget, curve, meta) of the ``n_ok`` rows with a finite positive
    cost and ``target`` ``(n_ok,)`` their standardized log cost (``(log(s) - mean) / std`` in ``dtype``, as
    ``CostPredictor.loss``).
    """

    def __init__(self, b: BatchArrays, n_model: int, log_stats: np.ndarray, dtype: np.dtype):
        align = compiled._aligned
        x = b.x.astype(dtype, copy=False)
        self.xm, self.xh = align(x[:, :n_model]), align(x[:, n_model:])
        self.budget, self.curve, self.meta, self.y = (align(a.astype(dtype, copy=False)) for a in b[1:5])
        cost = b.cost.astype(dtype, copy=False)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(cost) & (cost > 0)
        self.n_ok = int(ok.sum())
        stats = log_stats.astype(dtype)
        self.target = align((np.log(cost[ok]) - stats[0]) / stats[1])
        rows = (align(x), self.budget, self.curve, self.meta)
        self.cost_rows = rows if self.n_ok == len(ok) else tuple(align(a[ok]) for a in rows)


class CompiledMetaStep:
    """Meta-training steps of a Quick-Tune performance GP and its cost predictor, trained in place.

    Args:
        perf: the performance predictor (a ``DeepKernelGP`` over a ``QuickTuneExtractor``, training mode).
        cost: the cost predictor.
        train_cost: whether :meth:`step` also trains ``cost``.
    """

    name = "numba"

    def __init__(self, perf: DeepKernelGP, cost: CostPredictor, train_cost: bool = True):
        if not available(perf):
            raise TypeError("the compiled meta-training needs numba and a Quick-Tune DeepKernelGP")
        self.perf, self.cost, self.train_cost = perf, cost, train_cost
        ext = cast(QuickTuneExtractor, perf.extractor)
        self.n_model = ext.n_model
        self.p_params = quicktune_parameters(ext) + gp_hyperparameters(perf)
        self.c_params = list(cost.net.parameters())
        if len(self.p_params) != len(list(perf.parameters())) or len(self.c_params) != jit_meta.COST_PARAMETERS:
            raise TypeError("the models have parameters the compiled meta-training does not know")
        self.dtype = self.p_params[0].dtype
        self.np_dtype = np.dtype(str(self.dtype).removeprefix("torch."))
        self.log_stats = cost.log_stats.detach().numpy()
        self.p_offsets = np.cumsum([0] + [p.numel() for p in self.p_params[:-4]] + [4]).astype(np.int64)
        self.c_offsets = np.cumsum([0] + [p.numel() for p in self.c_params]).astype(np.int64)
        cc, hidden = ext.curve_encoder, cast(nn.Linear, ext.model_encoder[0]).out_features
        self.p_shapes = np.array([hidden, cc.conv1.out_channels, cc.fc.out_features, ext.head.out_features,
                                  int(ext.meta_encoder is not None)])  # fmt: skip
        net = cost.net
        self.c_shapes = np.array([net.curve_encoder.conv1.out_channels, net.curve_encoder.fc.out_features,
                                  cast(nn.Linear, net.net[0]).out_features])  # fmt: skip
        self.p_drop, self.c_drop = cc.dropout, net.curve_encoder.dropout
        self.noise_floor = float(perf.likelihood.noise_covar.raw_noise_constraint.lower_bound)
        self.theta_p, self.theta_c = compiled.flat_parameters(self.p_params), compiled.flat_parameters(self.c_params)
        self.m_p, self.v_p = (compiled._aligned(np.zeros_like(self.theta_p)) for _ in range(2))
        self.m_c, self.v_c = (compiled._aligned(np.zeros_like(self.theta_c)) for _ in range(2))
        self.steps_p = self.steps_c = 0
        self.jitters = np.zeros(len(jit_meta.JITTER), dtype=np.int64)
        self.failed = 0
        self._episodes: list[tuple[_Inputs, _Inputs]] | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Context of a training loop: BLAS on one thread (``surrogates.compiled``); warns about jitter and skipped
        steps at the end."""
        self.perf.train()  # dropout draws (the modules are never switched to evaluation mode here)
        self.cost.train()
        with compiled._one_blas_thread(), warnings.catch_warnings():
            warnings.simplefilter("ignore", compiled._PERFORMANCE_WARNING)
            yield
        for jitter, count in zip(jit_meta.JITTER, self.jitters.tolist(), strict=True):
            if count:
                warnings.warn(f"meta-training: kernel matrix not p.d. in {count} step(s), added jitter of "
                              f"{jitter:.1e} to the diagonal", stacklevel=3)  # fmt: skip
        if self.failed:
            warnings.warn(f"meta-training: {self.failed} step(s) skipped: the kernel matrix stayed indefinite after "
                          f"jitter {jit_meta.JITTER[-1]:.0e} or had NaN entries", stacklevel=3)  # fmt: skip

    def _scales(self, drop: GeneratorDropout1d, n: int, ch: int) -> np.ndarray:
        """``(n, ch)`` dropout scales of one forward pass (``surrogates.compiled.dropout_scales``), aligned."""
        return compiled._aligned(compiled.dropout_scales(drop, n, ch, self.dtype))

    def step(self, batch: BatchArrays, lrs: Sequence[float]) -> None:
        """One iteration on ``batch``: learning rates ``lrs`` = (network, GP hyperparameters, cost network)."""
        a = _Inputs(batch, self.n_model, self.log_stats, self.np_dtype)
        status, loss = jit_meta.quicktune_meta_step(
            self.theta_p, self.m_p, self.v_p, self.steps_p + 1, lrs[0], lrs[1], self.p_offsets, self.p_shapes,
            a.xm, a.xh, a.budget, a.curve, a.meta, a.y, self._scales(self.p_drop, len(a.y), int(self.p_shapes[1])),
            self.noise_floor, self.jitters,
        )  # fmt: skip
        if status == jit_meta.OK and math.isfinite(loss):
            self.steps_p += 1
        elif status != jit_meta.OK:
            self.failed += 1
        if self.train_cost and a.n_ok:  # no known cost: the autograd loop's loss has no gradient, Adam skips
            self.steps_c += 1
            scales = self._scales(self.c_drop, a.n_ok, int(self.c_shapes[0]))
            jit_meta.cost_step(self.theta_c, self.m_c, self.v_c, self.steps_c, lrs[2], self.c_offsets, self.c_shapes,
                               *a.cost_rows, a.target, scales)  # fmt: skip

    def validate(self, episodes: Sequence[tuple[Batch, Batch]]) -> tuple[float, float]:
        """Mean MSE of the GP mean (conditioned on each context) and of the standardized log cost on the queries."""
        if self._episodes is None:  # fixed episodes: converted once
            self._episodes = [
                (_Inputs(c.arrays(), self.n_model, self.log_stats, self.np_dtype),
                 _Inputs(q.arrays(), self.n_model, self.log_stats, self.np_dtype))
                for c, q in episodes
            ]  # fmt: skip
        p, c = [], []
        raw = self.theta_p[-4:]
        for ctx, query in self._episodes:
            z = [jit_meta.quicktune_features(self.theta_p, self.p_offsets, self.p_shapes, e.xm, e.xh, e.budget,
                                             e.curve, e.meta) for e in (ctx, query)]  # fmt: skip
            _, mean = jit_meta.gp_mean(z[0], ctx.y, z[1], raw, self.noise_floor)
            p.append(float(np.mean((mean - query.y.astype(np.float64)) ** 2)))
            if self.train_cost:
                c.append(jit_meta.cost_mse(self.theta_c, self.c_offsets, self.c_shapes, *query.cost_rows, query.target))
        return float(np.mean(p)), float(np.mean(c)) if c else float("nan")

    def perf_state(self) -> dict[str, Any]:
        """The performance GP's current state dict (a copy)."""
        compiled.write_parameters(self.p_params, self.theta_p)
        return self.perf.state()

    def cost_state(self) -> dict[str, Any]:
        """The cost predictor's current state dict (a copy)."""
        compiled.write_parameters(self.c_params, self.theta_c)
        return {k: v.detach().clone() for k, v in self.cost.state_dict().items()}
