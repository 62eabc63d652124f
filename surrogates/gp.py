"""The deep-kernel GP: a feature extractor feeding an exact GP, with a lean torch likelihood.

The model is gpytorch's ``ExactGP`` with ``ConstantMean``, ``ScaleKernel(RBFKernel())`` (one
lengthscale) and a ``GaussianLikelihood`` (noise >= 1e-4), trained by the negative exact marginal
log-likelihood per point with Adam, jointly over the network and the GP hyperparameters (reference
§4.1, §7). Predictive standard deviations include the likelihood noise, as in the reference.

The gpytorch modules only hold the GP hyperparameters (so state dicts and meta-trained caches keep
their layout); the likelihood and the predictions are computed here directly on one Cholesky factor
of the ``(N, N)`` kernel matrix, with a hand-written backward pass (:class:`_ExactNLL`): one
Cholesky, one ``cholesky_inverse`` and two ``(N, N) x (N, k)`` products per Adam step, instead of
gpytorch's generic lazy-tensor path (``surrogates.gp_gpytorch`` keeps that path as a test oracle and
as the baseline of ``benchmarks/quicktune_bench.py``). Prediction solves only the diagonal of the
predictive covariance. Everything runs in float32, as gpytorch does with float32 inputs; a kernel
matrix that is not positive definite gets gpytorch's jitter (1e-6, 1e-5, 1e-4 on the diagonal)
before the fit gives up. :meth:`DeepKernelGP.fit` runs ``surrogates.compiled.CompiledFit`` (the whole fit in one
numba-compiled call) or, without numba, ``surrogates.fused.FusedFit`` (the same steps with the extractor's
backward written out and one flat fused Adam) for the DyHPO and Quick-Tune networks; inside
a ``surrogates.batched.FitBatcher`` member (replays advanced in lockstep) the fit joins the others' in one
``surrogates.batched.BatchedFit``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any, ClassVar

import gpytorch
import numpy as np
import torch
from linear_operator.utils.errors import NanError, NotPSDError
from torch import nn

from surrogates.data import Batch
from surrogates.likelihood import (
    _MIN_VARIANCE,
    NotPositiveDefiniteError,
    exact_nll,
    exact_nll_backward,
    safe_cholesky,
    sq_dist,
)

NUMERICAL_ERRORS: tuple[type[Exception], ...] = (
    NotPositiveDefiniteError,
    torch.linalg.LinAlgError,
    NotPSDError,
    NanError,
)
"""What a numerically failed GP step raises (an indefinite kernel matrix after the largest jitter, a failed
Cholesky, gpytorch's non-PSD or NaN errors); any other error is a bug and propagates."""


class _ExactGP(gpytorch.models.ExactGP):
    def __init__(self, likelihood: gpytorch.likelihoods.GaussianLikelihood, dim: int):
        super().__init__(torch.zeros(1, dim), torch.zeros(1), likelihood)
        self.mean_module = gpytorch.means.ConstantMean()
        self.covar_module = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel())

    def forward(self, z: torch.Tensor) -> gpytorch.distributions.MultivariateNormal:
        return gpytorch.distributions.MultivariateNormal(self.mean_module(z), self.covar_module(z))


class _ExactNLL(torch.autograd.Function):
    """:func:`exact_nll` with its analytic backward (:func:`exact_nll_backward`) as an autograd function."""

    @staticmethod
    def forward(
        ctx: Any, z: torch.Tensor, y: torch.Tensor, c: torch.Tensor, s: torch.Tensor, ls: torch.Tensor, v: torch.Tensor
    ) -> torch.Tensor:
        loss, saved = exact_nll(z, y, c, s, ls, v)
        ctx.saved = saved
        return loss

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        d_z, d = exact_nll_backward(ctx.saved, grad)
        del ctx.saved
        return d_z, None, d[0], d[1], d[2], d[3]


class DeepKernelGP(nn.Module):
    """A feature extractor (``Batch -> (B, k)``) with an exact GP on its output.

    Args:
        extractor: the kernel network; must have an ``out_dim`` attribute (``k``).
    """

    adam_options: ClassVar[dict[str, Any]] = {"fused": True}
    """Options of every Adam optimizer on this model (fused: one kernel for all parameters)."""
    fused_fit: ClassVar[bool] = True
    """Whether :meth:`fit` uses a hand-written fit (``surrogates.compiled.CompiledFit``, or
    ``surrogates.fused.FusedFit`` without numba or with :attr:`compiled_fit` off) when the extractor is
    supported and no optimizer is given; otherwise it runs autograd and torch's Adam."""
    compiled_fit: ClassVar[bool] = True
    """Whether the hand-written fit is the numba-compiled one (when numba is importable)."""

    def __init__(self, extractor: nn.Module):
        super().__init__()
        self.extractor = extractor
        self.likelihood = gpytorch.likelihoods.GaussianLikelihood()
        out_dim = extractor.out_dim
        if not isinstance(out_dim, int | np.integer):
            raise TypeError(f"the extractor's out_dim must be an int, got {type(out_dim).__name__}")
        self.gp = _ExactGP(self.likelihood, int(out_dim))
        self.mll = gpytorch.mlls.ExactMarginalLogLikelihood(self.likelihood, self.gp)

    def hyperparameters(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scalar mean, outputscale, lengthscale and noise (differentiable in the raw parameters).

        gpytorch's constraints, written out: ``softplus(raw) + lower bound`` (0 for the outputscale
        and lengthscale, ``1e-4`` for the noise).
        """
        covar, noise = self.gp.covar_module, self.likelihood.noise_covar
        softplus = nn.functional.softplus
        return (
            self.gp.mean_module.raw_constant.reshape(()),
            softplus(covar.raw_outputscale).reshape(()),
            softplus(covar.base_kernel.raw_lengthscale).reshape(()),
            (softplus(noise.raw_noise) + noise.raw_noise_constraint.lower_bound).reshape(()),
        )

    def loss(self, batch: Batch) -> torch.Tensor:
        """Negative exact marginal log-likelihood (per point) of ``batch.y`` ``(B,)`` given its inputs."""
        return _ExactNLL.apply(self.extractor(batch), batch.y, *self.hyperparameters())

    def training_mse(self, batch: Batch) -> float:
        """MSE of the GP's prior mean (its constant) on ``batch.y``: DyHPO's training MSE.

        DyHPO scores ``gpytorch.metrics.mean_squared_error(model(z), y)`` with the model in training
        mode, where ``model(z)`` is the prior, whose mean is the learned constant.
        """
        with torch.no_grad():
            return float(((batch.y - self.hyperparameters()[0]) ** 2).mean())

    def fit(
        self,
        batch: Batch,
        epochs: int,
        lr: float = 1e-3,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> float:
        """Full-batch training for ``epochs`` Adam steps; returns the last loss (``nan`` if none ran).

        A step that fails numerically (:data:`NUMERICAL_ERRORS`, e.g. a non-PD kernel matrix) restores the
        state before this call and stops, like the reference's roll-back; any other error propagates.
        """
        if len(batch) < 2 or epochs <= 0:  # BatchNorm cannot train on one point (reference skips it)
            return float("nan")
        self.train()
        if optimizer is None and self.fused_fit:
            from surrogates import compiled
            from surrogates.batched import current_batcher
            from surrogates.fused import FusedFit, supports

            if supports(self):
                batcher = current_batcher()
                if batcher is not None:  # a replay in lockstep: fitted with the other replays' fits, in one batch
                    return batcher.fit(self, batch, epochs, lr)
                use_compiled = self.compiled_fit and compiled.prefers(self, len(batch))
                fit_class = compiled.CompiledFit if use_compiled else FusedFit
                try:
                    return fit_class(self, batch, lr).run(epochs)  # leaves the model untouched on failure
                except NUMERICAL_ERRORS:
                    return float("nan")
        before = copy.deepcopy(self.state_dict())
        opt = optimizer or torch.optim.Adam(self.parameters(), lr=lr, **self.adam_options)
        self.train()
        losses = []
        for _ in range(epochs):
            opt.zero_grad(set_to_none=True)
            try:
                loss = self.loss(batch)
                loss.backward()
            except NUMERICAL_ERRORS:
                self.load_state_dict(before)
                return float("nan")
            opt.step()
            losses.append(loss.detach())
        last = float(losses[-1])
        if not math.isfinite(last):
            self.load_state_dict(before)
        return last

    @torch.no_grad()
    def predict(self, train: Batch, query: Batch) -> tuple[np.ndarray, np.ndarray]:
        """Posterior predictive mean and std ``(Q,)`` each at ``query``, conditioned on ``train``."""
        self.eval()
        c, s, ls, v = self.hyperparameters()
        z_train = self.extractor(train) / ls
        z_query = self.extractor(query) / ls
        center = z_train.mean(0, keepdim=True)
        k = sq_dist(z_train, z_train, center)
        k.diagonal().zero_()
        k.mul_(-0.5).exp_().mul_(s).diagonal().add_(v)
        chol = safe_cholesky(k)
        cross = sq_dist(z_train, z_query, center).mul_(-0.5).exp_().mul_(s)  # (N, Q)
        alpha = torch.cholesky_solve((train.y - c).unsqueeze(1), chol).squeeze(1)
        mean = c + alpha @ cross
        root = torch.linalg.solve_triangular(chol, cross, upper=False)
        var = (s + v - (root * root).sum(0)).clamp_min(_MIN_VARIANCE)
        return mean.double().numpy(), var.double().sqrt().numpy()

    def state(self) -> dict[str, Any]:
        """A deep copy of the parameters and buffers (restorable with :meth:`restore`)."""
        return copy.deepcopy(self.state_dict())

    def restore(self, state: dict[str, Any]) -> None:
        """Load a state from :meth:`state`."""
        self.load_state_dict(state)


def make_deep_kernel_gp(factory: Callable[[], nn.Module], generator: torch.Generator) -> DeepKernelGP:
    """A :class:`DeepKernelGP` whose network is built by ``factory`` and initialised from ``generator``."""
    from surrogates.nets import init_parameters

    model = DeepKernelGP(factory())
    init_parameters(model.extractor, generator)
    return model
