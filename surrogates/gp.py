"""The deep-kernel GP: a feature extractor feeding gpytorch's exact GP.

``ExactGP`` with ``ConstantMean``, ``ScaleKernel(RBFKernel())`` (one lengthscale) and a
``GaussianLikelihood``, trained by the negative exact marginal log-likelihood with Adam, jointly
over the network and the GP hyperparameters (reference §4.1, §7). Predictive standard deviations
include the likelihood noise, as in the reference. Exact Cholesky solves are forced for any size
(gpytorch would switch to CG with random probes above 800 points, which uses the global RNG).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import gpytorch
import numpy as np
import torch
from linear_operator.utils.errors import NanError, NotPSDError
from torch import nn

from surrogates.data import Batch

_EXACT = 10**6  # gpytorch.settings.max_cholesky_size

NUMERICAL_ERRORS: tuple[type[Exception], ...] = (torch.linalg.LinAlgError, NotPSDError, NanError)
"""What a numerically failed GP step raises (a failed Cholesky, a non-PSD or NaN kernel matrix); any other
error is a bug and propagates."""


class _ExactGP(gpytorch.models.ExactGP):
    def __init__(self, likelihood: gpytorch.likelihoods.GaussianLikelihood, dim: int):
        super().__init__(torch.zeros(1, dim), torch.zeros(1), likelihood)
        self.mean_module = gpytorch.means.ConstantMean()
        self.covar_module = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel())

    def forward(self, z: torch.Tensor) -> gpytorch.distributions.MultivariateNormal:
        return gpytorch.distributions.MultivariateNormal(self.mean_module(z), self.covar_module(z))


class DeepKernelGP(nn.Module):
    """A feature extractor (``Batch -> (B, k)``) with an exact GP on its output.

    Args:
        extractor: the kernel network; must have an ``out_dim`` attribute (``k``).
    """

    def __init__(self, extractor: nn.Module):
        super().__init__()
        self.extractor = extractor
        self.likelihood = gpytorch.likelihoods.GaussianLikelihood()
        out_dim = extractor.out_dim
        if not isinstance(out_dim, int | np.integer):
            raise TypeError(f"the extractor's out_dim must be an int, got {type(out_dim).__name__}")
        self.gp = _ExactGP(self.likelihood, int(out_dim))
        self.mll = gpytorch.mlls.ExactMarginalLogLikelihood(self.likelihood, self.gp)

    def loss(self, batch: Batch) -> torch.Tensor:
        """Negative exact marginal log-likelihood (per point) of ``batch.y`` ``(B,)`` given its inputs."""
        z = self.extractor(batch)
        self.gp.set_train_data(z, batch.y, strict=False)
        with gpytorch.settings.max_cholesky_size(_EXACT):
            return -self.mll(self.gp(z), batch.y)

    def fit(
        self,
        batch: Batch,
        epochs: int,
        lr: float = 1e-3,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> float:
        """Full-batch training for ``epochs`` Adam steps; returns the last loss (``nan`` if none ran).

        A step that fails numerically (:data:`NUMERICAL_ERRORS`, e.g. a non-PD kernel matrix) restores the
        state before this call and stops, like the reference's roll-back.
        """
        if len(batch) < 2 or epochs <= 0:  # BatchNorm cannot train on one point (reference skips it)
            return float("nan")
        before = copy.deepcopy(self.state_dict())
        opt = optimizer or torch.optim.Adam(self.parameters(), lr=lr)
        self.train()
        last = float("nan")
        for _ in range(epochs):
            opt.zero_grad()
            try:
                loss = self.loss(batch)
                loss.backward()
            except NUMERICAL_ERRORS:
                self.load_state_dict(before)
                return float("nan")
            opt.step()
            last = float(loss.detach())
        if not math.isfinite(last):
            self.load_state_dict(before)
        return last

    @torch.no_grad()
    def predict(self, train: Batch, query: Batch) -> tuple[np.ndarray, np.ndarray]:
        """Posterior predictive mean and std ``(Q,)`` each at ``query``, conditioned on ``train``."""
        self.eval()
        with gpytorch.settings.max_cholesky_size(_EXACT):
            z_train = self.extractor(train)
            self.gp.set_train_data(z_train, train.y, strict=False)
            pred = self.likelihood(self.gp(self.extractor(query)))
            mean, std = pred.mean.numpy().astype(np.float64), pred.stddev.numpy().astype(np.float64)
        return mean, std

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
