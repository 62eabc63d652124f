"""StochNorm (Kou et al. 2020), p = 0.5: BatchNorm layers that mix running and batch statistics.

In training each channel is normalised, with probability ``p``, by the batch's statistics and
otherwise by the running statistics (one Bernoulli draw per channel and batch, from torch's
default generator); the running statistics are updated as in BatchNorm. In eval it is BatchNorm.

Layers are converted in place by switching their class to a StochNorm subclass of their own class,
so every parameter, buffer and attribute survives, including the activation and dropout of timm's
``BatchNormAct2d`` (which a plain ``isinstance(BatchNorm2d)`` swap would silently drop).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

STOCH_NORM_P = 0.5
_classes: dict[type, type] = {}


class StochNormMixin:
    """The StochNorm forward for any ``_BatchNorm`` subclass (activation/dropout kept when present)."""

    stoch_p: float

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` of shape (B, C, ...)."""
        bn: _BatchNorm = self  # type: ignore[assignment]
        if not bn.training or bn.running_mean is None or bn.running_var is None:
            return super().forward(x)  # type: ignore[misc]  # BatchNorm(+act) of the class itself
        factor = 0.0 if bn.momentum is None else bn.momentum
        if bn.track_running_stats and bn.num_batches_tracked is not None:
            bn.num_batches_tracked.add_(1)
            if bn.momentum is None:
                factor = 1.0 / float(bn.num_batches_tracked)
        z_running = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        z_batch = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, True, factor, bn.eps)
        shape = [1, x.shape[1]] + [1] * (x.ndim - 2)
        s = torch.bernoulli(torch.full(shape, self.stoch_p, device=x.device, dtype=x.dtype))
        return self._post((1 - s) * z_running + s * z_batch)

    def _post(self, z: torch.Tensor) -> torch.Tensor:
        """Dropout and activation of BatchNormAct layers; identity for plain BatchNorm."""
        if self._has_act():
            z = self.drop(z)  # type: ignore[attr-defined]
            z = self.act(z)  # type: ignore[attr-defined]
        return z

    def _has_act(self) -> bool:
        return isinstance(getattr(self, "act", None), nn.Module) and isinstance(getattr(self, "drop", None), nn.Module)


def _stoch_class(cls: type) -> type:
    if cls not in _classes:
        _classes[cls] = type(f"StochNorm{cls.__name__}", (StochNormMixin, cls), {"__module__": __name__})
    return _classes[cls]


def convert_to_stoch_norm(model: nn.Module, p: float = STOCH_NORM_P) -> int:
    """Turn every BatchNorm layer of ``model`` into StochNorm in place; returns how many were converted."""
    n = 0
    for module in model.modules():
        if isinstance(module, _BatchNorm) and not isinstance(module, StochNormMixin):
            if isinstance(module, nn.SyncBatchNorm):
                raise ValueError("StochNorm does not support SyncBatchNorm")
            module.__class__ = _stoch_class(type(module))
            assert isinstance(module, StochNormMixin)
            module.stoch_p = p
            n += 1
    return n
