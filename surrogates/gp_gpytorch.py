"""The deep-kernel GP on gpytorch's generic exact-GP path: the previous implementation, kept as an oracle.

:class:`GpytorchDeepKernelGP` has the same modules and state dict as :class:`surrogates.gp.DeepKernelGP`
but computes the marginal likelihood with ``ExactMarginalLogLikelihood`` and predictions through
``ExactGP``'s prediction strategy (forced to exact Cholesky solves at any size: above 800 points
gpytorch would switch to CG with random probes from the global RNG), and trains with single-tensor
Adam, exactly as this project did before the lean likelihood. Tests check that both give the same
likelihood, gradients and predictions; ``benchmarks/quicktune_bench.py`` times both.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gpytorch
import numpy as np
import torch

from surrogates.data import Batch
from surrogates.gp import DeepKernelGP

_EXACT = 10**6  # gpytorch.settings.max_cholesky_size


class GpytorchDeepKernelGP(DeepKernelGP):
    """:class:`DeepKernelGP` computed by gpytorch (slow; for tests and the speed-up benchmark)."""

    adam_options: ClassVar[dict[str, Any]] = {}  # torch's default single-tensor Adam, as before
    fused_fit: ClassVar[bool] = False  # autograd through gpytorch, as before

    def loss(self, batch: Batch) -> torch.Tensor:
        """Negative exact marginal log-likelihood (per point) of ``batch.y`` ``(B,)`` given its inputs."""
        z = self.extractor(batch)
        self.gp.set_train_data(z, batch.y, strict=False)
        with gpytorch.settings.max_cholesky_size(_EXACT):
            return -self.mll(self.gp(z), batch.y)

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


def as_gpytorch(model: DeepKernelGP) -> GpytorchDeepKernelGP:
    """A :class:`GpytorchDeepKernelGP` sharing ``model``'s extractor, with a copy of its GP state."""
    out = GpytorchDeepKernelGP(model.extractor)
    out.load_state_dict(model.state_dict())
    return out
