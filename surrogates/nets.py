"""Feature extractors of the deep-kernel GPs and the cost network.

* :class:`QuickTuneExtractor`: Quick-Tune's kernel network (reference §4.1) with the encoder split
  fixed (model one-hot ``[0, M)`` / hyperparameters ``[M, D)``) and without the unused ``fc2``.
* :class:`DyHPOExtractor`: DyHPO's kernel network (reference §7).
* :class:`CostNet`: Quick-Tune's cost network (reference §4.2) on log seconds.

Parameters are initialised from an explicit :class:`torch.Generator` (:func:`init_parameters`),
and dropout draws from the module's own generator, so nothing here touches torch's global RNG.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from surrogates.data import Batch


def init_parameters(module: nn.Module, generator: torch.Generator) -> None:
    """Re-initialise every Linear/Conv1d like torch's default (Kaiming-uniform), from ``generator``."""
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv1d):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                fan_in = m.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)
        elif isinstance(m, nn.BatchNorm1d):
            m.reset_parameters()
        if isinstance(m, GeneratorDropout1d):
            m.generator = generator


class GeneratorDropout1d(nn.Module):
    """Channel dropout (as ``nn.Dropout1d``) whose masks come from its own generator.

    Shapes: ``(B, C, L)`` -> ``(B, C, L)``.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape[0], x.shape[1], 1, generator=self.generator, dtype=x.dtype) >= self.p
        return x * keep / (1.0 - self.p)


class CurveConv(nn.Module):
    """Quick-Tune's curve encoder: two same-padded convolutions, max-pool, dropout, a dense layer.

    Shapes: ``(B, E)`` -> ``(B, out_dim)``.
    """

    def __init__(self, max_epochs: int, channels: int = 8, out_dim: int = 16, dropout: float = 0.25):
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, 3, padding="same")
        self.conv2 = nn.Conv1d(channels, channels, 3, padding="same")
        self.pool = nn.MaxPool1d(2)
        self.dropout = GeneratorDropout1d(dropout)
        self.fc = nn.Linear(channels * (max_epochs // 2), out_dim)

    def forward(self, curve: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv1(curve.unsqueeze(1)))
        h = self.dropout(self.pool(self.conv2(h)))
        return torch.relu(self.fc(torch.relu(h.flatten(1))))


def _mlp2(d_in: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden))


class QuickTuneExtractor(nn.Module):
    """Quick-Tune's kernel network over (pipeline, budget, curve, meta-features).

    Group encoders: model one-hot ``(B, M)`` and hyperparameters ``(B, D-M)`` -> ``(B, hidden)`` each;
    meta-features ``(B, 4)`` -> ``(B, 4)`` (linear); curve ``(B, E)`` -> ``(B, 16)``; with the budget
    ``(B, 1)`` concatenated -> Linear -> LeakyReLU -> ``(B, out_dim)``.
    """

    def __init__(
        self,
        n_model: int,
        dim: int,
        max_epochs: int,
        hidden: int = 32,
        out_dim: int = 32,
        curve_dim: int = 16,
        use_meta: bool = True,
        dropout: float = 0.25,
    ):
        super().__init__()
        self.n_model, self.dim, self.max_epochs, self.out_dim = n_model, dim, max_epochs, out_dim
        self.use_meta = use_meta
        self.model_encoder = _mlp2(n_model, hidden)
        self.hp_encoder = _mlp2(dim - n_model, hidden)
        self.meta_encoder = nn.Linear(4, 4) if use_meta else None
        self.curve_encoder = CurveConv(max_epochs, out_dim=curve_dim, dropout=dropout)
        self.head = nn.Linear(2 * hidden + 1 + (4 if use_meta else 0) + curve_dim, out_dim)

    def forward(self, batch: Batch) -> torch.Tensor:
        """``(B, out_dim)`` features of the batch's inputs."""
        parts = [
            self.model_encoder(batch.x[:, : self.n_model]),
            self.hp_encoder(batch.x[:, self.n_model :]),
            batch.budget,
            self.curve_encoder(batch.curve),
        ]
        if self.meta_encoder is not None:
            parts.append(self.meta_encoder(batch.meta))
        return nn.functional.leaky_relu(self.head(torch.cat(parts, dim=1)))


class DyHPOExtractor(nn.Module):
    """DyHPO's kernel network.

    ``[x, b/E]`` ``(B, D+1)`` -> Linear(D+1, 64) -> BatchNorm -> LeakyReLU; curve ``(B, E)`` ->
    Conv1d(1, 4, k=3) -> AdaptiveMaxPool1d(1) -> ``(B, 4)``; concat ``(B, 68)`` -> Linear(68, 128)
    -> LeakyReLU -> ``(B, 128)``.
    """

    def __init__(self, dim: int, hidden: int = 64, out_dim: int = 128, channels: int = 4):
        super().__init__()
        self.dim, self.out_dim = dim, out_dim
        self.fc1 = nn.Linear(dim + 1, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.conv = nn.Conv1d(1, channels, 3)
        self.pool = nn.AdaptiveMaxPool1d(1)
        self.fc2 = nn.Linear(hidden + channels, out_dim)

    def forward(self, batch: Batch) -> torch.Tensor:
        """``(B, out_dim)`` features of the batch's inputs."""
        h = nn.functional.leaky_relu(self.bn(self.fc1(torch.cat([batch.x, batch.budget], dim=1))))
        c = self.pool(self.conv(batch.curve.unsqueeze(1))).flatten(1)
        return nn.functional.leaky_relu(self.fc2(torch.cat([h, c], dim=1)))


class CostNet(nn.Module):
    """Quick-Tune's cost network: predicts the standardized log seconds of the epoch at the budget.

    ``[x (D), b/E (1), meta-embedding (4), curve-embedding (16)]`` -> Linear -> LeakyReLU ->
    Linear -> ReLU -> Linear -> ``(B,)`` (no final ReLU: the target is a standardized log).
    """

    def __init__(self, dim: int, max_epochs: int, hidden: int = 32, curve_dim: int = 16, dropout: float = 0.25):
        super().__init__()
        self.meta_encoder = nn.Linear(4, 4)
        self.curve_encoder = CurveConv(max_epochs, out_dim=curve_dim, dropout=dropout)
        self.net = nn.Sequential(
            nn.Linear(dim + 1 + 4 + curve_dim, hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, batch: Batch) -> torch.Tensor:
        """``(B,)`` standardized log cost."""
        z = torch.cat([batch.x, batch.budget, self.meta_encoder(batch.meta), self.curve_encoder(batch.curve)], dim=1)
        return self.net(z).squeeze(1)
