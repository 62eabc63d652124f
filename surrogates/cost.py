"""The cost predictor: seconds of the epoch at a budget, learned as a standardized log.

Trained with MSE on ``(log(cost) - mean) / std`` (statistics of the meta-training epochs), so
predictions are positive and errors are relative; the reference regresses ``seconds / 100``
directly (see docs/quicktune-deviations.md).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from surrogates.data import Batch
from surrogates.nets import CostNet


class CostPredictor(nn.Module):
    """A :class:`CostNet` plus the log-cost standardization it was trained with.

    Args:
        dim: ``D``, the encoded pipeline width.
        max_epochs: ``E``.
        log_mean, log_std: statistics of ``log(seconds)`` on the meta-training epochs.
    """

    log_stats: torch.Tensor  # a buffer: (mean, std) of log(seconds)

    def __init__(self, dim: int, max_epochs: int, log_mean: float = 0.0, log_std: float = 1.0, hidden: int = 32):
        super().__init__()
        self.net = CostNet(dim, max_epochs, hidden=hidden)
        self.register_buffer("log_stats", torch.tensor([log_mean, log_std], dtype=torch.float32))

    def loss(self, batch: Batch) -> torch.Tensor:
        """MSE on standardized log cost over the rows with a finite positive cost (``0`` if none)."""
        ok = torch.isfinite(batch.cost) & (batch.cost > 0)
        if not bool(ok.any()):
            return torch.zeros((), requires_grad=True)
        target = (torch.log(batch.cost[ok]) - self.log_stats[0]) / self.log_stats[1]
        return nn.functional.mse_loss(self.net(batch.subset(torch.nonzero(ok).squeeze(1))), target)

    @torch.no_grad()
    def predict(self, batch: Batch) -> np.ndarray:
        """``(B,)`` predicted seconds of the epoch at each row's budget."""
        self.eval()
        z = self.net(batch).double()
        return torch.exp(z * float(self.log_stats[1]) + float(self.log_stats[0])).numpy()


def log_cost_stats(costs: list[np.ndarray]) -> tuple[float, float]:
    """Mean and std of ``log(seconds)`` over all finite positive entries of ``costs``."""
    flat = np.concatenate([c[np.isfinite(c) & (c > 0)].ravel() for c in costs]) if costs else np.zeros(0)
    if flat.size == 0:
        return 0.0, 1.0
    logs = np.log(flat)
    std = float(logs.std())
    return float(logs.mean()), std if std > 1e-8 and math.isfinite(std) else 1.0
