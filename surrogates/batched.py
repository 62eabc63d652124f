"""Many deep-kernel GP fits as one batched fit, and a batcher that lets replays in threads share it.

BO replays fit thousands of tiny GPs (2 to ~100 observations); at that size a fused Adam step
(:class:`surrogates.fused.FusedFit`) costs its ~100-170 torch operations' overhead, not arithmetic.
:class:`BatchedFit` runs the fits of ``B`` models of one architecture as one: every tensor gets a
leading member dimension (batched matmuls, one batched Cholesky and ``cholesky_inverse``, one fused
Adam over a ``(B, P)`` buffer), so a step costs about the same operations for ``B`` members as for one.

* **Padding.** Members with fewer observations are padded to the largest ``N`` with masked rows:
  their inputs are zero, their kernel rows and columns are an identity block (``K = [[K_b, 0],
  [0, I]]``), their targets equal the mean, so they add nothing to the likelihood or its gradient;
  BatchNorm statistics (DyHPO) are taken over each member's own rows. The result per member equals
  its unbatched fit up to floating-point rounding (``tests/surrogates/test_batched.py``: 1e-9 in
  float64, gradients of every parameter, fitted weights, BatchNorm statistics).
* **Different lengths.** Each member runs its own number of Adam steps; a member that is done (or
  fails numerically: its kernel matrix stays indefinite after the largest jitter, or its last loss is not
  finite) leaves the batch, which shrinks to the others; its model is written back (or left untouched,
  as :meth:`surrogates.gp.DeepKernelGP.fit` does on failure). The last member left finishes as a
  :class:`surrogates.fused.FusedFit` that continues its Adam state (a batch of one is slower).
* **Same random streams.** Dropout masks are drawn from each member's own generator, in the order
  and shapes of its unbatched fit.

:class:`FitBatcher` coordinates threads that each run one replay (``benchmark.lockstep``): a thread's
:meth:`surrogates.gp.DeepKernelGP.fit` hands its fit to the batcher and waits; once every live
thread waits on a fit (or has finished), their fits run as one :class:`BatchedFit`. A round holds the
k-th fit of every live member, so the batches (and the results) do not depend on thread timing.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from surrogates.data import Batch
from surrogates.fused import _BETAS, _EPS, _LEAKY, FusedFit, _sigmoid, _softplus, quicktune_parameters, supports
from surrogates.likelihood import _JITTER, _LOG_2PI, NotPositiveDefiniteError
from surrogates.nets import DyHPOExtractor, QuickTuneExtractor


def _leaky_backward(grad: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
    return torch.ops.aten.leaky_relu_backward(grad, pre, _LEAKY, False)


def _pad_stack(tensors: Sequence[torch.Tensor], rows: int) -> torch.Tensor:
    """``(B, rows, ...)``: each ``(n_b, ...)`` tensor zero-padded to ``rows`` rows, stacked."""
    out = tensors[0].new_zeros((len(tensors), rows, *tensors[0].shape[1:]))
    for b, t in enumerate(tensors):
        out[b, : t.shape[0]] = t
    return out


def _bt(v: torch.Tensor) -> torch.Tensor:
    """``(B, in, out)`` transposed weight matrices of ``(B, out, ...)`` per-member weights (biases as they are)."""
    return v.reshape(v.shape[0], v.shape[1], -1).transpose(1, 2) if v.dim() > 2 else v


def _bias(v: torch.Tensor) -> torch.Tensor:
    return v.unsqueeze(1)


def _linear(x: torch.Tensor, wt: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x @ wt + bias`` per member: ``(B, N, in)``, ``(B, in, out)``, ``(B, out)`` -> ``(B, N, out)``.

    (``baddbmm`` would first copy the bias broadcast over all rows: slower at these sizes.)
    """
    return torch.bmm(x, wt).add_(bias.unsqueeze(1))


class _Inputs:
    """The members' batches padded to one ``N``: inputs, targets, a row mask and the row counts."""

    def __init__(self, batches: Sequence[Batch]):
        self.counts = [len(b) for b in batches]
        n = max(self.counts)
        self.x = _pad_stack([b.x for b in batches], n)
        self.budget = _pad_stack([b.budget for b in batches], n)
        self.curve = _pad_stack([b.curve for b in batches], n)
        self.meta = _pad_stack([b.meta for b in batches], n)
        self.y = _pad_stack([b.y for b in batches], n)
        dtype = self.x.dtype
        self.mask = (torch.arange(n).unsqueeze(0) < torch.tensor(self.counts).unsqueeze(1)).to(dtype)  # (B, N)
        self.count = torch.tensor(self.counts, dtype=dtype)  # (B,)


class _BatchedDyHPO:
    """DyHPO's extractor over a member dimension; BatchNorm statistics per member over its own rows."""

    def __init__(self, exts: Sequence[DyHPOExtractor], inp: _Inputs):
        self.exts = exts
        self.params = [[e.fc1.weight, e.fc1.bias, e.bn.weight, e.bn.bias, e.conv.weight, e.conv.bias,
                        e.fc2.weight, e.fc2.bias] for e in exts]  # fmt: skip
        self.x1 = torch.cat([inp.x, inp.budget], dim=2)  # (B, N, D+1)
        self.win = inp.curve.unfold(2, 3, 1).contiguous()  # (B, N, E-2, 3)
        self.m = inp.mask.unsqueeze(2)  # (B, N, 1)
        self.count = inp.count.view(-1, 1, 1)
        bns = [e.bn for e in exts]
        self.running_mean = torch.stack([cast(torch.Tensor, bn.running_mean) for bn in bns]).unsqueeze(1)
        self.running_var = torch.stack([cast(torch.Tensor, bn.running_var) for bn in bns]).unsqueeze(1)
        self.momentum = float(bns[0].momentum or 0.0)
        self.bn_eps = float(bns[0].eps)
        self.unbias = self.count / (self.count - 1).clamp_min(1)
        self.tracked = [0] * len(exts)
        self.hidden = exts[0].fc1.out_features

    def select(self, keep: list[int], rows: int) -> None:
        """Keeps members ``keep`` (positions) and the first ``rows`` rows."""
        idx = torch.tensor(keep, dtype=torch.long)
        for name in ("x1", "win", "m", "count", "running_mean", "running_var", "unbias"):
            t = getattr(self, name).index_select(0, idx)
            setattr(self, name, t[:, :rows] if name in ("x1", "win", "m") else t)
        self.exts = [self.exts[i] for i in keep]
        self.params = [self.params[i] for i in keep]
        self.tracked = [self.tracked[i] for i in keep]

    def forward(self, w: list[torch.Tensor], wt: list[torch.Tensor]) -> torch.Tensor:
        _, b1, gamma, beta, _, bc, _, b2 = w
        m, count = self.m, self.count
        self.h1 = _linear(self.x1, wt[0], b1)
        mean = (self.h1 * m).sum(1, keepdim=True) / count
        centred = (self.h1 - mean).mul_(m)
        var = (centred * centred).sum(1, keepdim=True) / count
        self.invstd = (var + self.bn_eps).rsqrt_()
        self.xhat = centred * self.invstd
        self.h2 = torch.addcmul(_bias(beta), self.xhat, _bias(gamma))
        mom = self.momentum
        self.running_mean.mul_(1 - mom).add_(mean, alpha=mom)
        self.running_var.mul_(1 - mom).add_(var * self.unbias, alpha=mom)
        self.tracked = [t + 1 for t in self.tracked]
        bsz, n, length, _ = self.win.shape
        conv = torch.bmm(self.win.view(bsz, n * length, 3), wt[4]).view(bsz, n, length, -1)  # (B, N, L, C)
        top, self.idx = conv.max(2)  # (B, N, C)
        self.h = torch.cat([nn.functional.leaky_relu(self.h2), top + _bias(bc)], dim=2)
        self.out = _linear(self.h, wt[6], b2)
        return nn.functional.leaky_relu(self.out)

    def backward(self, dz: torch.Tensor, w: list[torch.Tensor], g: list[torch.Tensor]) -> None:
        gw1, gb1, ggamma, gbeta, gwc, gbc, gw2, gb2 = g
        d_out = _leaky_backward(dz, self.out)
        gw2.copy_(torch.bmm(d_out.transpose(1, 2), self.h))
        gb2.copy_(d_out.sum(1))
        dh = torch.bmm(d_out, w[6])
        d_h2 = _leaky_backward(dh[..., : self.hidden], self.h2).mul_(self.m)
        gbeta.copy_(d_h2.sum(1))
        ggamma.copy_((d_h2 * self.xhat).sum(1))
        d_xhat = d_h2 * _bias(w[2])
        # BatchNorm backward (training mode, biased variance), per member over its own rows
        s1 = d_xhat.sum(1, keepdim=True)
        s2 = (d_xhat * self.xhat).sum(1, keepdim=True)
        d_h1 = (d_xhat * self.count - s1 - self.xhat * s2).mul_(self.invstd / self.count).mul_(self.m)
        gw1.copy_(torch.bmm(d_h1.transpose(1, 2), self.x1))
        gb1.copy_(d_h1.sum(1))
        d_top = dh[..., self.hidden :]  # (B, N, C)
        picked = self.win.gather(2, self.idx.unsqueeze(3).expand(-1, -1, -1, 3))  # (B, N, C, 3)
        gwc.copy_((picked * d_top.unsqueeze(3)).sum(1).view_as(gwc))
        gbc.copy_(d_top.sum(1))

    def finish(self, position: int) -> None:
        """Writes member ``position``'s BatchNorm running statistics into its module."""
        bn = self.exts[position].bn
        with torch.no_grad():
            cast(torch.Tensor, bn.running_mean).copy_(self.running_mean[position, 0])
            cast(torch.Tensor, bn.running_var).copy_(self.running_var[position, 0])
            cast(torch.Tensor, bn.num_batches_tracked).add_(self.tracked[position])


class _BatchedQuickTune:
    """Quick-Tune's extractor over a member dimension; dropout masks from each member's generator."""

    def __init__(self, exts: Sequence[QuickTuneExtractor], inp: _Inputs):
        self.exts = exts
        self.params = [quicktune_parameters(ext) for ext in exts]
        first = exts[0]
        self.n_model = first.n_model
        self.counts = list(inp.counts)
        self.xm = inp.x[..., : self.n_model].contiguous()
        self.xh = inp.x[..., self.n_model :].contiguous()
        self.budget, self.meta = inp.budget, inp.meta
        self.win = nn.functional.pad(inp.curve, (1, 1)).unfold(2, 3, 1).contiguous()  # (B, N, E, 3)
        self.channels = first.curve_encoder.conv1.out_channels
        self.pooled = inp.curve.shape[2] // 2
        self.dropouts = [cast(nn.Dropout, e.curve_encoder.dropout) for e in exts]
        self.hidden = int(cast(nn.Linear, first.model_encoder[0]).out_features)

    def select(self, keep: list[int], rows: int) -> None:
        """Keeps members ``keep`` (positions) and the first ``rows`` rows."""
        idx = torch.tensor(keep, dtype=torch.long)
        for name in ("xm", "xh", "budget", "meta", "win"):
            setattr(self, name, getattr(self, name).index_select(0, idx)[:, :rows])
        for name in ("exts", "params", "counts", "dropouts"):
            setattr(self, name, [getattr(self, name)[i] for i in keep])

    def _dropout_scale(self, rows: int, dtype: torch.dtype) -> torch.Tensor | None:
        """``(B, N, C, 1)`` dropout scales, each member's drawn as its unbatched fit draws them; ``None``
        without dropout."""
        first = self.dropouts[0]
        if not (first.training and first.p > 0):
            return None
        keep = torch.zeros(len(self.dropouts), rows, self.channels, 1, dtype=dtype)
        for b, (drop, n) in enumerate(zip(self.dropouts, self.counts, strict=True)):
            gen = cast(torch.Generator | None, getattr(drop, "generator", None))
            keep[b, :n] = (torch.rand(n, self.channels, 1, generator=gen, dtype=dtype) >= drop.p).to(dtype)
        return keep.div_(1.0 - first.p)

    def forward(self, w: list[torch.Tensor], wt: list[torch.Tensor]) -> torch.Tensor:
        _, bm1, _, bm2, _, bh1, _, bh2, _, bc1, _, bc2, _, bf, _, bo = w[:16]
        bsz, n, length, _ = self.win.shape
        ch, half = self.channels, self.pooled
        self.m1 = _linear(self.xm, wt[0], bm1).relu_()
        self.p1 = _linear(self.xh, wt[4], bh1).relu_()
        self.c1 = _linear(self.win.view(bsz, -1, 3), wt[8], bc1).view(bsz, n, length, ch).relu_()
        # same-padded size-3 windows of conv1's output, ordered (channel, offset) like Conv1d weights
        self.win2 = nn.functional.pad(self.c1, (0, 0, 1, 1)).unfold(2, 3, 1).reshape(bsz, n, length, 3 * ch)
        c2 = _linear(self.win2.view(bsz, -1, 3 * ch), wt[10], bc2).view(bsz, n, length, ch)
        pool, self.pool_idx = c2[:, :, : 2 * half].reshape(bsz, n, half, 2, ch).max(3)  # (B, N, E//2, C)
        pool = pool.transpose(2, 3)  # (B, N, C, E//2), torch's layout
        self.scale = self._dropout_scale(n, pool.dtype)
        if self.scale is not None:
            pool = pool * self.scale
        self.flat = pool.reshape(bsz, n, -1).relu_()
        self.f = _linear(self.flat, wt[12], bf).relu_()
        parts = [_linear(self.m1, wt[2], bm2), _linear(self.p1, wt[6], bh2), self.budget,
                 self.f]  # fmt: skip
        if len(w) > 16:
            parts.append(_linear(self.meta, wt[16], w[17]))
        self.h = torch.cat(parts, dim=2)
        self.out = _linear(self.h, wt[14], bo)
        return nn.functional.leaky_relu(self.out)

    def backward(self, dz: torch.Tensor, w: list[torch.Tensor], g: list[torch.Tensor]) -> None:
        bsz, n, length, _ = self.win.shape
        ch, half, hid = self.channels, self.pooled, self.hidden
        d_out = _leaky_backward(dz, self.out)
        g[14].copy_(torch.bmm(d_out.transpose(1, 2), self.h))
        g[15].copy_(d_out.sum(1))
        dh = torch.bmm(d_out, w[14])
        k = 2 * hid + 1 + self.f.shape[2]
        if len(w) > 16:
            d_meta = dh[..., k:]
            g[16].copy_(torch.bmm(d_meta.transpose(1, 2), self.meta))
            g[17].copy_(d_meta.sum(1))
        for j, (d, x, hidden) in enumerate(
            ((dh[..., :hid], self.xm, self.m1), (dh[..., hid : 2 * hid], self.xh, self.p1))
        ):
            gw1, gb1, gw2, gb2 = g[4 * j : 4 * j + 4]
            gw2.copy_(torch.bmm(d.transpose(1, 2), hidden))
            gb2.copy_(d.sum(1))
            d1 = torch.bmm(d, w[4 * j + 2]).mul_(hidden > 0)
            gw1.copy_(torch.bmm(d1.transpose(1, 2), x))
            gb1.copy_(d1.sum(1))
        d_f = dh[..., 2 * hid + 1 : k] * (self.f > 0)
        g[12].copy_(torch.bmm(d_f.transpose(1, 2), self.flat))
        g[13].copy_(d_f.sum(1))
        d_pool = torch.bmm(d_f, w[12]).mul_(self.flat > 0).view(bsz, n, ch, half)
        if self.scale is not None:
            d_pool = d_pool * self.scale
        d_c2 = torch.zeros(bsz, n, length, ch, dtype=dz.dtype)
        pairs = d_c2[:, :, : 2 * half].view(bsz, n, half, 2, ch)
        pairs.scatter_(3, self.pool_idx.unsqueeze(3), d_pool.transpose(2, 3).unsqueeze(3))
        d_c2 = d_c2.view(bsz, -1, ch)
        g[10].copy_(torch.bmm(d_c2.transpose(1, 2), self.win2.view(bsz, -1, 3 * ch)).view_as(g[10]))
        g[11].copy_(d_c2.sum(1))
        d_win2 = torch.bmm(d_c2, w[10].reshape(bsz, ch, 3 * ch)).view(bsz, n, length, ch, 3)
        d_c1 = d_win2[..., 1].clone()  # window (t-1, t, t+1) of conv1's output at t
        d_c1[:, :, 1:] += d_win2[:, :, :-1, :, 2]
        d_c1[:, :, :-1] += d_win2[:, :, 1:, :, 0]
        d_c1.mul_(self.c1 > 0)
        d_c1 = d_c1.view(bsz, -1, ch)
        g[8].copy_(torch.bmm(d_c1.transpose(1, 2), self.win.view(bsz, -1, 3)).view_as(g[8]))
        g[9].copy_(d_c1.sum(1))

    def finish(self, position: int) -> None:
        """Nothing to write back (no BatchNorm)."""


_BATCHED: dict[type, type] = {DyHPOExtractor: _BatchedDyHPO, QuickTuneExtractor: _BatchedQuickTune}


def _signature(model: Any) -> tuple:
    """Models with equal signatures can share a :class:`BatchedFit` (same extractor class and shapes)."""
    return (type(model.extractor), tuple((tuple(p.shape), p.dtype) for p in model.parameters()))


class _MemberFailed(Exception):
    """A member's kernel matrix stayed indefinite (it leaves the batch, its model untouched)."""


def _batched_nll(
    z: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, count: torch.Tensor, hyper: torch.Tensor, with_loss: bool
) -> tuple[torch.Tensor | None, tuple, list[int]]:
    """:func:`surrogates.likelihood.exact_nll` per member of ``z`` ``(B, N, k)``, padded rows masked out.

    ``hyper`` ``(B, 4)``: mean, outputscale, lengthscale, noise. Returns the ``(B,)`` losses (``None``
    unless ``with_loss``), what the backward needs, and the positions of members whose kernel matrix is
    indefinite after the largest jitter (their results are garbage; the caller drops them).
    """
    c, s, ls, v = (hyper[:, i] for i in range(4))
    m = mask.unsqueeze(2)  # (B, N, 1)
    zs = z / ls.view(-1, 1, 1)
    zc = (zs - (zs * m).sum(1, keepdim=True) / count.view(-1, 1, 1)).mul_(m)
    sq = (zc * zc).sum(2, keepdim=True)
    kf = torch.bmm(zc, zc.transpose(1, 2)).mul_(-2.0).add_(sq).add_(sq.transpose(1, 2)).clamp_min_(0.0)
    kf.diagonal(dim1=1, dim2=2).zero_()
    kf.mul_(-0.5).exp_().mul_(s.view(-1, 1, 1)).mul_(m).mul_(m.transpose(1, 2))
    k = kf.clone()
    k.diagonal(dim1=1, dim2=2).add_(v.unsqueeze(1) * mask + (1.0 - mask))  # padded rows: identity
    chol, failed = _batched_cholesky(k, mask)
    r = (y - c.unsqueeze(1)).mul_(mask).unsqueeze(2)
    alpha = torch.cholesky_solve(r, chol).squeeze(2)
    saved = (zc, kf, chol, alpha, s, ls, mask, count)
    if not with_loss:
        return None, saved, failed
    logdet = chol.diagonal(dim1=1, dim2=2).log().sum(1)
    loss = (0.5 * (r.squeeze(2) * alpha).sum(1) + logdet + 0.5 * count * _LOG_2PI) / count
    return loss, saved, failed


def _batched_cholesky(k: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """Lower Cholesky factors of ``k`` ``(B, N, N)``; a member that is not p.d. gets gpytorch's jitter on
    its own diagonal (as :func:`surrogates.likelihood.safe_cholesky`). Also returns the members that still
    fail (NaN entries, or indefinite after the largest jitter); their factors are replaced by identities."""
    chol, info = torch.linalg.cholesky_ex(k)
    bad = torch.nonzero(info).flatten().tolist()
    if not bad:
        return chol, []
    nan = [b for b in bad if bool(torch.isnan(k[b]).any())]
    bad = [b for b in bad if b not in nan]
    k = k.clone()
    previous = 0.0
    for jitter in _JITTER:
        if not bad:
            break
        for b in bad:
            k[b].diagonal().add_((jitter - previous) * mask[b])
        previous = jitter
        warnings.warn(f"kernel matrix not p.d., added jitter of {jitter:.1e} to the diagonal", stacklevel=4)
        chol, info = torch.linalg.cholesky_ex(k)
        bad = [b for b in bad if bool(info[b])]
    failed = sorted(nan + bad)
    if failed:
        chol = chol.clone()
        for b in failed:  # keeps the batch's algebra finite; the caller drops these members
            chol[b] = torch.eye(k.shape[1], dtype=k.dtype)
    return chol, failed


def _batched_nll_backward(saved: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of each member's loss of :func:`_batched_nll`: ``d_z`` ``(B, N, k)`` and ``(B, 4)``."""
    zc, kf, chol, alpha, s, ls, mask, count = saved
    g = torch.cholesky_inverse(chol)  # (K^-1 - a a^T) / (2N) per member; padded block: identity, masked below
    g.sub_(alpha.unsqueeze(2) * alpha.unsqueeze(1))
    g.mul_((0.5 / count).view(-1, 1, 1))
    d_v = (g.diagonal(dim1=1, dim2=2) * mask).sum(1)
    g.mul_(kf)  # W = dloss/dK * Kf (zero on padded rows and columns)
    d_s = g.sum((1, 2)) / s
    d_zc = torch.bmm(g, zc).sub_(zc * g.sum(2, keepdim=True)).mul_(2.0)
    d_z = d_zc / ls.view(-1, 1, 1)
    d_ls = -(d_zc * zc).sum((1, 2)) / ls
    d_c = -alpha.sum(1) / count
    return d_z, torch.stack([d_c, d_s, d_ls, d_v], dim=1)


class BatchedFit:
    """Full-batch Adam fits of several ``DeepKernelGP`` of one architecture as one batched fit.

    Args:
        models: ``surrogates.gp.DeepKernelGP`` models whose extractors :func:`surrogates.fused.supports`
            accepts, all of one architecture (trained in place by :meth:`run`).
        batches: each model's training inputs and targets (sizes may differ; at least 2 rows each).
        lr: Adam's learning rate (shared).
    """

    def __init__(self, models: Sequence[Any], batches: Sequence[Batch], lr: float):
        if not models or len(models) != len(batches):
            raise ValueError(f"need one batch per model, got {len(models)} models and {len(batches)} batches")
        for model in models:
            if not supports(model):
                raise TypeError(f"no fused fit for extractor {type(model.extractor).__name__}; use the autograd fit")
        if len({_signature(m) for m in models}) != 1:
            raise TypeError("the models of a batched fit must share one architecture (extractor class and shapes)")
        if min(len(b) for b in batches) < 2:
            raise ValueError("every batch needs at least 2 observations (BatchNorm cannot train on one)")
        self.models = list(models)
        self.batches = list(batches)
        self.inputs = _Inputs(batches)
        self.kernel = _BATCHED[type(models[0].extractor)]([m.extractor for m in models], self.inputs)
        hypers = []
        for model in models:
            gp, noise = model.gp, model.likelihood.noise_covar
            hypers.append([gp.mean_module.raw_constant, gp.covar_module.raw_outputscale,
                           gp.covar_module.base_kernel.raw_lengthscale, noise.raw_noise])  # fmt: skip
        self.params = [k + h for k, h in zip(self.kernel.params, hypers, strict=True)]
        if len(self.params[0]) != len(list(models[0].parameters())):
            raise TypeError("the model has parameters the fused fit does not know; use the autograd fit")
        self.shapes = [p.shape for p in self.params[0]]
        self.sizes = [p.numel() for p in self.params[0]]
        if sum(self.sizes[-4:]) != 4:
            raise TypeError("the GP hyperparameters must be 4 scalars")
        self.value = torch.stack([torch.cat([p.detach().reshape(-1) for p in ps]) for ps in self.params])  # (B, P)
        self.floor = float(models[0].likelihood.noise_covar.raw_noise_constraint.lower_bound)
        self.lr = float(lr)
        self.exp_avg = torch.zeros_like(self.value)
        self.exp_avg_sq = torch.zeros_like(self.value)
        self.step_count = torch.zeros((), dtype=torch.float32)
        self.active = list(range(len(models)))  # member index of each position
        self._views()

    def _views(self) -> None:
        """Per-parameter ``(B, ...)`` views of the value and gradient buffers (rebuilt when members leave)."""
        self.grad = torch.zeros_like(self.value)
        self.values, self.grads, offset = [], [], 0
        bsz = self.value.shape[0]
        for shape, n in zip(self.shapes, self.sizes, strict=True):
            self.values.append(self.value[:, offset : offset + n].view(bsz, *shape))
            self.grads.append(self.grad[:, offset : offset + n].view(bsz, *shape))
            offset += n
        n_net = len(self.shapes) - 4
        self.net_values, self.net_grads = self.values[:n_net], self.grads[:n_net]
        self.net_t = [_bt(v) for v in self.net_values]
        self.raw, self.raw_grad = self.value[:, -4:], self.grad[:, -4:]

    def _keep(self, positions: list[int]) -> None:
        """Drops every member not at ``positions`` from the batch (and rows no member needs)."""
        idx = torch.tensor(positions, dtype=torch.long)
        self.value = self.value.index_select(0, idx)
        self.exp_avg = self.exp_avg.index_select(0, idx)
        self.exp_avg_sq = self.exp_avg_sq.index_select(0, idx)
        self.active = [self.active[i] for i in positions]
        if not self.active:
            return
        inp = self.inputs
        rows = max(inp.counts[i] for i in self.active)
        self.y = inp.y.index_select(0, torch.tensor(self.active))[:, :rows]
        self.mask = inp.mask.index_select(0, torch.tensor(self.active))[:, :rows]
        self.count = inp.count.index_select(0, torch.tensor(self.active))
        self.kernel.select(positions, rows)
        self._views()

    def step(self, with_loss: bool = True) -> tuple[torch.Tensor | None, list[int]]:
        """One Adam step of every member in the batch; returns their losses before the update (``None``
        unless ``with_loss``) and the positions of members that failed (not updated meaningfully)."""
        # gpytorch's constraints in Python floats, as the unbatched fit: mean raw, softplus(raw) (+ floor: noise)
        raw = self.raw.tolist()
        hyper = torch.tensor(
            [[r[0], _softplus(r[1]), _softplus(r[2]), _softplus(r[3]) + self.floor] for r in raw], dtype=torch.float64
        )
        z = self.kernel.forward(self.net_values, self.net_t)
        loss, saved, failed = _batched_nll(z, self.y, self.mask, self.count, hyper.to(z.dtype), with_loss)
        d_z, d_hyper = _batched_nll_backward(saved)
        dsoft = torch.tensor([[1.0] + [_sigmoid(r) for r in row[1:]] for row in raw], dtype=d_hyper.dtype)
        self.raw_grad.copy_(d_hyper * dsoft)
        self.kernel.backward(d_z, self.net_values, self.net_grads)
        self.step_count += 1
        torch._fused_adam_(
            [self.value], [self.grad], [self.exp_avg], [self.exp_avg_sq], [], [self.step_count],
            amsgrad=False, lr=self.lr, beta1=_BETAS[0], beta2=_BETAS[1], weight_decay=0.0, eps=_EPS,
            maximize=False, grad_scale=None, found_inf=None,
        )  # fmt: skip
        return loss, failed

    def _write_back(self, position: int) -> None:
        member = self.active[position]
        offset = 0
        with torch.no_grad():
            for p, n in zip(self.params[member], self.sizes, strict=True):
                p.copy_(self.value[position, offset : offset + n].view_as(p))
                offset += n
        self.kernel.finish(position)

    def run(self, epochs: Sequence[int]) -> list[float]:
        """``epochs[b]`` Adam steps of member ``b``; writes each member's weights back when it is done.

        Returns each member's last loss (``nan`` for a member with no steps, a non-finite last loss or an
        indefinite kernel matrix; such a member's model is left untouched, as by ``DeepKernelGP.fit``).
        """
        if len(epochs) != len(self.models):
            raise ValueError(f"need one number of epochs per model, got {len(epochs)} for {len(self.models)}")
        out = [math.nan] * len(self.models)
        todo = [int(e) for e in epochs]
        with torch.inference_mode():
            self._keep([i for i in range(len(self.models)) if todo[i] > 0])
            done = 0
            while self.active:
                last = [todo[m] == done + 1 for m in self.active]
                loss, failed = self.step(with_loss=any(last))
                done += 1
                keep = []
                for pos, member in enumerate(self.active):
                    if pos in failed:
                        continue
                    if not last[pos]:
                        keep.append(pos)
                        continue
                    value = float(cast(torch.Tensor, loss)[pos])
                    if math.isfinite(value):
                        self._write_back(pos)
                    out[member] = value
                if len(keep) < len(self.active):
                    self._keep(keep)
                if len(self.active) == 1:  # a batch of one costs more than the unbatched step: hand it over
                    member = self.active[0]
                    out[member] = self._finish_alone(todo[member] - done)
        return out

    def _finish_alone(self, steps: int) -> float:
        """Runs the last member's remaining ``steps`` as a :class:`surrogates.fused.FusedFit` that continues
        its Adam state; returns its last loss (on failure the model is restored to its state before the fit)."""
        member = self.active[0]
        model = self.models[member]
        before = {k: v.clone() for k, v in model.state_dict().items()}  # untouched by this fit so far
        self._write_back(0)
        fit = FusedFit(model, self.batches[member], self.lr)
        fit.exp_avg.copy_(self.exp_avg[0])
        fit.exp_avg_sq.copy_(self.exp_avg_sq[0])
        fit.step_count.copy_(self.step_count)
        self.active = []
        try:
            loss = fit.run(steps)
        except (NotPositiveDefiniteError, torch.linalg.LinAlgError):
            loss = math.nan
        if not math.isfinite(loss):
            model.load_state_dict(before)
        return loss


MAX_BATCHED_ROWS = 200
"""Fits with more observations than this run one by one (``FusedFit``): measured by
``benchmarks/lockstep_bench.py``, a batched step of 5 surrogates is 1.1-1.3x faster than 5 alone at 150
observations and 0.8x at 500 (the batch's kernel matrices no longer fit the caches; LAPACK dominates)."""


@dataclass
class _Request:
    model: Any
    batch: Batch
    epochs: int
    lr: float
    result: float | BaseException | None = None


class FitBatcher:
    """Runs the GP fits of several threads (one replay each) as batched fits, in rounds.

    ``members`` threads enter :meth:`member` (no round runs before all have entered); inside it,
    ``DeepKernelGP.fit`` calls :meth:`fit`, which waits until every live member waits on a fit or has left,
    then runs all of them (grouped by architecture and learning rate, members in order of entry) as
    :class:`BatchedFit` calls and returns each its loss. A group alone, or with more than
    :data:`MAX_BATCHED_ROWS` observations, is fitted one by one (``DeepKernelGP.fit``).
    """

    def __init__(self, members: int):
        if int(members) < 1:
            raise ValueError(f"a batcher needs at least one member, got {members}")
        self.members = int(members)
        self._cond = threading.Condition()
        self._order: dict[int, int] = {}  # thread id -> entry order
        self._waiting: dict[int, _Request] = {}
        self._entered = 0
        self.rounds = 0
        self.fits = 0

    @contextmanager
    def member(self) -> Iterator[None]:
        """The calling thread's fits go through this batcher until the block ends."""
        me = threading.get_ident()
        with self._cond:
            if self._entered == self.members:
                raise RuntimeError(f"this batcher was made for {self.members} members; another one entered")
            self._order[me] = self._entered
            self._entered += 1
        _local.batcher = self
        try:
            yield
        finally:
            _local.batcher = None
            with self._cond:
                del self._order[me]
                self._run_if_ready()

    def fit(self, model: Any, batch: Batch, epochs: int, lr: float) -> float:
        """Hands one fit to the batch and waits for its turn; returns its last loss (as ``DeepKernelGP.fit``)."""
        me = threading.get_ident()
        request = _Request(model, batch, int(epochs), float(lr))
        with self._cond:
            self._waiting[me] = request
            self._run_if_ready()
            while request.result is None:
                self._cond.wait()
        if isinstance(request.result, BaseException):
            raise request.result
        return request.result

    def _run_if_ready(self) -> None:
        """With the lock held: runs the round once every live member waits (members not in it keep waiting)."""
        if not self._waiting or len(self._waiting) < len(self._order) or self._entered < self.members:
            return
        requests = [self._waiting[t] for t in sorted(self._waiting, key=self._order.__getitem__)]
        self._waiting.clear()
        groups: dict[tuple, list[_Request]] = {}
        for r in requests:
            groups.setdefault((_signature(r.model), r.lr), []).append(r)
        mine = _local.batcher  # this thread runs the round (it may be leaving: then it is None already)
        for (_, lr), group in groups.items():
            try:
                if len(group) == 1 or max(len(r.batch) for r in group) > MAX_BATCHED_ROWS:
                    _local.batcher = None  # these fits run alone, not through the batcher
                    for r in group:
                        r.result = r.model.fit(r.batch, r.epochs, lr=r.lr)
                    _local.batcher = mine
                    continue
                losses = BatchedFit([r.model for r in group], [r.batch for r in group], lr).run(
                    [r.epochs for r in group]
                )
                for r, loss in zip(group, losses, strict=True):
                    r.result = loss
            except BaseException as e:  # a bug, not a numerical failure: every member of the group sees it
                _local.batcher = mine
                for r in group:
                    r.result = e
        self.rounds += 1
        self.fits += len(requests)
        self._cond.notify_all()


class _Local(threading.local):
    batcher: FitBatcher | None = None


_local = _Local()


def current_batcher() -> FitBatcher | None:
    """The :class:`FitBatcher` the calling thread's fits go through (``None``: fit alone)."""
    return _local.batcher
