"""Fast full-batch fits of the deep-kernel GP: hand-written forward and backward, one flat Adam.

At the sizes Bayesian optimisation fits (tens to hundreds of observations) an Adam step through
autograd is ~150 small torch operations: module calls, autograd nodes, gradient accumulation, the
optimizer's bookkeeping. :class:`FusedFit` does the same step with fewer operations and none of
autograd's work (at 10 points: 99 top-level torch operations for DyHPO, 174 for Quick-Tune):

* the inputs are fixed during a fit, so their concatenations and the curve windows of the
  convolutions are built once;
* the extractor's forward pass and its backward pass are written out (linear layers, ReLU /
  LeakyReLU, training-mode BatchNorm through ATen's own kernels, the 1-d convolutions as matrix
  products over the curve windows, max-pooling by index), writing the gradients straight into one
  flat gradient buffer;
* the GP likelihood and its analytic backward are :func:`surrogates.likelihood.exact_nll` /
  :func:`surrogates.likelihood.exact_nll_backward` (the same code as the autograd path);
* all parameters live in one flat buffer updated by one call of torch's fused Adam kernel (the
  update torch's ``Adam(fused=True)`` applies, element by element).

The model is the same (same parameters, same dropout draws from the same generator, same BatchNorm
running statistics), so the result equals the autograd fit up to floating-point rounding
(``tests/surrogates/test_fused.py`` checks losses, gradients and fitted weights). Supported
extractors: :class:`surrogates.nets.DyHPOExtractor` and :class:`surrogates.nets.QuickTuneExtractor`;
:func:`supports` tells whether a model can use this path.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
from torch import nn

from surrogates.data import Batch
from surrogates.nets import DyHPOExtractor, QuickTuneExtractor

_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults
_EPS = 1e-8
_LEAKY = 0.01  # nn.functional.leaky_relu's default slope


def supports(model: nn.Module) -> bool:
    """Whether :class:`FusedFit` can fit ``model`` (a ``DeepKernelGP``): its extractor has a written-out backward."""
    ext = getattr(model, "extractor", None)
    return type(ext) in _KERNELS


def _softplus(x: float) -> float:
    """``torch.nn.functional.softplus`` (beta 1, threshold 20) of a float."""
    return x if x > 20.0 else math.log1p(math.exp(x))


def _sigmoid(x: float) -> float:
    """The softplus' derivative."""
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _leaky_backward(grad: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
    return torch.ops.aten.leaky_relu_backward(grad, pre, _LEAKY, False)


def _windows(curve: torch.Tensor, pad: int) -> torch.Tensor:
    """``(B, L, 3)`` windows of a ``(B, E)`` curve for a size-3 convolution (``pad`` zeros each side)."""
    if pad:
        curve = nn.functional.pad(curve, (pad, pad))
    return curve.unfold(1, 3, 1).contiguous()


class _Flat:
    """Views of the model's parameters into one flat value buffer and one flat gradient buffer."""

    def __init__(self, params: list[torch.Tensor]):
        self.params = params
        self.value = torch.cat([p.detach().reshape(-1) for p in params])
        self.grad = torch.zeros_like(self.value)
        self.values: list[torch.Tensor] = []
        self.grads: list[torch.Tensor] = []
        offset = 0
        for p in params:
            n = p.numel()
            self.values.append(self.value[offset : offset + n].view_as(p))
            self.grads.append(self.grad[offset : offset + n].view_as(p))
            offset += n

    def write_back(self) -> None:
        """Copies the flat values into the model's parameters."""
        with torch.no_grad():
            for p, v in zip(self.params, self.values, strict=True):
                p.copy_(v)


class _DyHPOKernel:
    """DyHPO's extractor (``surrogates.nets.DyHPOExtractor``), forward and backward by hand."""

    def __init__(self, ext: DyHPOExtractor, batch: Batch):
        self.ext = ext
        self.params = dyhpo_parameters(ext)
        self.x1 = torch.cat([batch.x, batch.budget], dim=1)
        self.win = _windows(batch.curve, 0)  # (B, E-2, 3)
        bn = ext.bn
        self.running = (bn.running_mean.clone(), bn.running_var.clone())  # type: ignore[union-attr]
        self.tracked = 0
        self.hidden = ext.fc1.out_features

    def forward(self, w: list[torch.Tensor], wt: list[torch.Tensor]) -> torch.Tensor:
        _, b1, gamma, beta, _, bc, _, b2 = w
        bn = self.ext.bn
        self.h1 = torch.addmm(b1, self.x1, wt[0])
        self.h2, self.mean, self.invstd = torch.native_batch_norm(
            self.h1, gamma, beta, self.running[0], self.running[1], True, float(bn.momentum or 0.0), bn.eps
        )
        self.tracked += 1
        conv = torch.matmul(self.win, wt[4])  # (B, L, C)
        top, self.idx = conv.max(1)  # (B, C)
        self.h = torch.cat([nn.functional.leaky_relu(self.h2), top + bc], dim=1)
        self.out = torch.addmm(b2, self.h, wt[6])
        return nn.functional.leaky_relu(self.out)

    def backward(self, dz: torch.Tensor, w: list[torch.Tensor], g: list[torch.Tensor]) -> None:
        gw1, gb1, ggamma, gbeta, gwc, gbc, gw2, gb2 = g
        d_out = _leaky_backward(dz, self.out)
        torch.mm(d_out.T, self.h, out=gw2)
        torch.sum(d_out, 0, out=gb2)
        dh = d_out @ w[6]
        d_h2 = _leaky_backward(dh[:, : self.hidden], self.h2)
        d_h1 = torch.empty_like(self.h1)
        torch.ops.aten.native_batch_norm_backward.out(
            d_h2, self.h1, w[2], self.running[0], self.running[1], self.mean, self.invstd, True,
            self.ext.bn.eps, [True, True, True], out0=d_h1, out1=ggamma, out2=gbeta,
        )  # fmt: skip
        torch.mm(d_h1.T, self.x1, out=gw1)
        torch.sum(d_h1, 0, out=gb1)
        d_top = dh[:, self.hidden :]  # (B, C)
        picked = self.win.gather(1, self.idx.unsqueeze(2).expand(-1, -1, 3))  # (B, C, 3)
        torch.sum(picked * d_top.unsqueeze(2), 0, out=gwc.view(gwc.shape[0], 3))
        torch.sum(d_top, 0, out=gbc)

    def finish(self) -> None:
        """Writes the BatchNorm running statistics of the fit into the module."""
        bn = self.ext.bn
        with torch.no_grad():
            bn.running_mean.copy_(self.running[0])  # type: ignore[union-attr]
            bn.running_var.copy_(self.running[1])  # type: ignore[union-attr]
            bn.num_batches_tracked.add_(self.tracked)  # type: ignore[union-attr]


def dyhpo_parameters(ext: DyHPOExtractor) -> list[torch.Tensor]:
    """The extractor's parameters in the order the written-out kernels use (weight, bias per layer)."""
    return [cast(torch.Tensor, t) for t in (ext.fc1.weight, ext.fc1.bias, ext.bn.weight, ext.bn.bias,
                                             ext.conv.weight, ext.conv.bias, ext.fc2.weight, ext.fc2.bias)]  # fmt: skip


def gp_hyperparameters(model: Any) -> list[torch.Tensor]:
    """The GP's raw mean, outputscale, lengthscale and noise of a ``DeepKernelGP`` (the flat buffer's tail)."""
    gp, noise = model.gp, model.likelihood.noise_covar
    return [gp.mean_module.raw_constant, gp.covar_module.raw_outputscale,
            gp.covar_module.base_kernel.raw_lengthscale, noise.raw_noise]  # fmt: skip


def quicktune_parameters(ext: QuickTuneExtractor) -> list[torch.Tensor]:
    """The extractor's parameters in the order the written-out kernels use (weight, bias per layer)."""
    cc = ext.curve_encoder
    modules = [ext.model_encoder[0], ext.model_encoder[2], ext.hp_encoder[0], ext.hp_encoder[2], cc.conv1,
               cc.conv2, cc.fc, ext.head]  # fmt: skip
    layers = cast(list[nn.Linear | nn.Conv1d], modules)
    if ext.meta_encoder is not None:
        layers.append(ext.meta_encoder)
    return [cast(torch.Tensor, t) for m in layers for t in (m.weight, m.bias)]


class _QuickTuneKernel:
    """Quick-Tune's extractor (``surrogates.nets.QuickTuneExtractor``), forward and backward by hand."""

    def __init__(self, ext: QuickTuneExtractor, batch: Batch):
        self.ext = ext
        self.params = quicktune_parameters(ext)
        cc = ext.curve_encoder
        self.xm = batch.x[:, : ext.n_model].contiguous()
        self.xh = batch.x[:, ext.n_model :].contiguous()
        self.budget, self.meta = batch.budget, batch.meta
        self.win = _windows(batch.curve, 1)  # (B, E, 3)
        self.channels = cc.conv1.out_channels
        self.pooled = batch.curve.shape[1] // 2
        self.dropout = cast(nn.Dropout, cc.dropout)
        self.hidden = int(cast(nn.Linear, ext.model_encoder[0]).out_features)

    def forward(self, w: list[torch.Tensor], wt: list[torch.Tensor]) -> torch.Tensor:
        _, bm1, _, bm2, _, bh1, _, bh2, _, bc1, _, bc2, _, bf, _, bo = w[:16]
        n, ch, half = self.xm.shape[0], self.channels, self.pooled
        self.m1 = torch.addmm(bm1, self.xm, wt[0]).relu_()
        self.p1 = torch.addmm(bh1, self.xh, wt[4]).relu_()
        # curve encoder, channels last: conv1 (B, E, C) -> relu -> conv2 over windows -> max-pool(2)
        self.c1 = torch.addmm(bc1, self.win.view(-1, 3), wt[8]).view(n, -1, ch).relu_()
        self.win2 = _windows_channels(self.c1)  # (B, E, C*3)
        c2 = torch.addmm(bc2, self.win2.view(-1, 3 * ch), wt[10]).view(n, -1, ch)
        pool, self.pool_idx = c2[:, : 2 * half].view(n, half, 2, ch).max(2)  # (B, E//2, C)
        pool = pool.transpose(1, 2)  # (B, C, E//2), torch's layout
        if self.dropout.training and self.dropout.p > 0:
            gen = cast(torch.Generator | None, getattr(self.dropout, "generator", None))
            keep = torch.rand(n, ch, 1, generator=gen, dtype=pool.dtype) >= self.dropout.p
            self.scale = keep.to(pool.dtype) / (1.0 - self.dropout.p)
            pool = pool * self.scale
        else:
            self.scale = None  # type: ignore[assignment]
        self.flat = pool.reshape(n, -1).relu_()
        self.f = torch.addmm(bf, self.flat, wt[12]).relu_()
        parts = [torch.addmm(bm2, self.m1, wt[2]), torch.addmm(bh2, self.p1, wt[6]), self.budget, self.f]
        if len(w) > 16:
            parts.append(torch.addmm(w[17], self.meta, wt[16]))
        self.h = torch.cat(parts, dim=1)
        self.out = torch.addmm(bo, self.h, wt[14])
        return nn.functional.leaky_relu(self.out)

    def backward(self, dz: torch.Tensor, w: list[torch.Tensor], g: list[torch.Tensor]) -> None:
        n, ch, half, hid = self.xm.shape[0], self.channels, self.pooled, self.hidden
        d_out = _leaky_backward(dz, self.out)
        torch.mm(d_out.T, self.h, out=g[14])
        torch.sum(d_out, 0, out=g[15])
        dh = d_out @ w[14]
        k = 2 * hid + 1 + self.f.shape[1]
        if len(w) > 16:
            d_meta = dh[:, k:]
            torch.mm(d_meta.T, self.meta, out=g[16])
            torch.sum(d_meta, 0, out=g[17])
        # group encoders: Linear -> ReLU -> Linear
        for j, (d, x, hidden) in enumerate(((dh[:, :hid], self.xm, self.m1), (dh[:, hid : 2 * hid], self.xh, self.p1))):
            gw1, gb1, gw2, gb2 = g[4 * j : 4 * j + 4]
            torch.mm(d.T, hidden, out=gw2)
            torch.sum(d, 0, out=gb2)
            d1 = (d @ w[4 * j + 2]).mul_(hidden > 0)
            torch.mm(d1.T, x, out=gw1)
            torch.sum(d1, 0, out=gb1)
        # curve encoder
        d_f = dh[:, 2 * hid + 1 : k] * (self.f > 0)
        torch.mm(d_f.T, self.flat, out=g[12])
        torch.sum(d_f, 0, out=g[13])
        d_pool = (d_f @ w[12]).mul_(self.flat > 0).view(n, ch, half)
        if self.scale is not None:
            d_pool = d_pool * self.scale
        d_c2 = torch.zeros(n, self.win2.shape[1], ch, dtype=dz.dtype)
        pairs = d_c2[:, : 2 * half].view(n, half, 2, ch)
        pairs.scatter_(2, self.pool_idx.unsqueeze(2), d_pool.transpose(1, 2).unsqueeze(2))
        d_c2 = d_c2.view(-1, ch)
        torch.mm(d_c2.T, self.win2.view(-1, 3 * ch), out=g[10].view(ch, 3 * ch))
        torch.sum(d_c2, 0, out=g[11])
        d_win2 = (d_c2 @ w[10].view(ch, 3 * ch)).view(n, -1, ch, 3)
        d_c1 = d_win2[..., 1].clone()  # window (t-1, t, t+1) of conv1's output at t
        d_c1[:, 1:] += d_win2[:, :-1, :, 2]
        d_c1[:, :-1] += d_win2[:, 1:, :, 0]
        d_c1.mul_(self.c1 > 0)
        d_c1 = d_c1.view(-1, ch)
        torch.mm(d_c1.T, self.win.view(-1, 3), out=g[8].view(ch, 3))
        torch.sum(d_c1, 0, out=g[9])

    def finish(self) -> None:
        """Nothing to write back (no BatchNorm)."""


def _windows_channels(h: torch.Tensor) -> torch.Tensor:
    """``(B, L, C*3)`` same-padded size-3 windows of ``(B, L, C)``, ordered (channel, offset) like Conv1d weights."""
    return nn.functional.pad(h, (0, 0, 1, 1)).unfold(1, 3, 1).reshape(h.shape[0], h.shape[1], -1)


_KERNELS: dict[type, type] = {DyHPOExtractor: _DyHPOKernel, QuickTuneExtractor: _QuickTuneKernel}


class FusedFit:
    """One full-batch Adam fit of a ``DeepKernelGP`` on ``batch`` (see the module docstring).

    Args:
        model: a ``surrogates.gp.DeepKernelGP`` whose extractor :func:`supports` accepts (trained
            in place by :meth:`run`).
        batch: the training inputs and targets ``(N, ...)``.
        lr: Adam's learning rate.
    """

    def __init__(self, model: Any, batch: Batch, lr: float):
        if not supports(model):
            raise TypeError(f"no fused fit for extractor {type(model.extractor).__name__}; use the autograd fit")
        self.model = model
        self.kernel = _KERNELS[type(model.extractor)](model.extractor, batch)
        noise = model.likelihood.noise_covar
        hyper = gp_hyperparameters(model)
        if len(self.kernel.params) + len(hyper) != len(list(model.parameters())):
            raise TypeError("the model has parameters the fused fit does not know; use the autograd fit")
        self.flat = _Flat(self.kernel.params + hyper)
        n_net = len(self.kernel.params)
        self.net_values, self.net_grads = self.flat.values[:n_net], self.flat.grads[:n_net]
        # weights as (out, in) matrices, transposed once: views of the flat buffer stay valid across updates
        self.net_t = [v.view(v.shape[0], -1).t() if v.dim() > 1 else v for v in self.net_values]
        width = sum(p.numel() for p in hyper)
        if width != 4:
            raise TypeError("the GP hyperparameters must be 4 scalars")
        self.raw = self.flat.value[-4:]
        self.raw_grad = self.flat.grad[-4:]
        self.floors = (0.0, 0.0, float(noise.raw_noise_constraint.lower_bound))  # outputscale, lengthscale, noise
        self.y = batch.y
        self.lr = float(lr)
        self.exp_avg = torch.zeros_like(self.flat.value)
        self.exp_avg_sq = torch.zeros_like(self.flat.value)
        self.step_count = torch.zeros((), dtype=torch.float32)

    def step(self, with_loss: bool = True) -> torch.Tensor | None:
        """One Adam step; returns the loss before the update (``None`` unless ``with_loss``).

        Raises ``RuntimeError`` (:class:`surrogates.likelihood.NotPositiveDefiniteError`) on a non-PD kernel matrix.
        """
        from surrogates.likelihood import exact_nll, exact_nll_backward

        # gpytorch's constraints in Python: mean raw; softplus(raw) (+ 1e-4 for the noise) for the others
        raw = self.raw.tolist()
        c, s, ls, v = raw[0], *(_softplus(r) + f for r, f in zip(raw[1:], self.floors, strict=True))
        z = self.kernel.forward(self.net_values, self.net_t)
        loss, saved = exact_nll(z, self.y, c, s, ls, v, with_loss)
        d_z, d_hyper = exact_nll_backward(saved)
        dsoft = torch.tensor([1.0] + [_sigmoid(r) for r in raw[1:]], dtype=self.raw.dtype)
        torch.mul(d_hyper, dsoft, out=self.raw_grad)
        self.kernel.backward(d_z, self.net_values, self.net_grads)
        self.step_count += 1
        torch._fused_adam_(
            [self.flat.value], [self.flat.grad], [self.exp_avg], [self.exp_avg_sq], [], [self.step_count],
            amsgrad=False, lr=self.lr, beta1=_BETAS[0], beta2=_BETAS[1], weight_decay=0.0, eps=_EPS,
            maximize=False, grad_scale=None, found_inf=None,
        )  # fmt: skip
        return loss

    def run(self, epochs: int) -> float:
        """``epochs`` Adam steps; on success writes the weights (and BatchNorm statistics) into the model.

        Returns the last loss; a non-finite last loss leaves the model untouched (as does an exception).
        """
        if epochs <= 0:
            return math.nan
        with torch.inference_mode():  # no autograd bookkeeping (version counters, view tracking)
            for i in range(epochs):  # the loss itself is only returned: computed at the last step
                loss = self.step(with_loss=i == epochs - 1)
            last = float(loss)  # type: ignore[arg-type]
        if math.isfinite(last):
            self.flat.write_back()
            self.kernel.finish()
        return last
