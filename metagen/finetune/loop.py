"""One training epoch and one validation pass, with the per-epoch numbers the store's curves hold."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from metagen.finetune.mixup import SeededMixup
from metagen.finetune.regularizers import Regularizers

BATCH_HOOK: Callable[[int], None] | None = None
"""Called with the batch size before every training step (tests use it to simulate out-of-memory)."""


class StopEpoch(Exception):
    """Raised inside an epoch to abandon it: ``reason`` is "stop" (should_stop) or "timeout" (cap)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class StepParts:
    """What a training step needs besides the batch."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    scaler: torch.amp.GradScaler
    device: torch.device
    amp: bool
    clip_grad: float | None
    head_params: list[nn.Parameter]
    body_params: list[nn.Parameter]
    regularizers: Regularizers | None = None
    mixup: SeededMixup | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _norm(params: list[nn.Parameter]) -> torch.Tensor | None:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return None
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)).float())


def train_epoch(
    parts: StepParts, loader: Iterable[tuple[torch.Tensor, torch.Tensor]], check: Callable[[], None]
) -> dict[str, float]:
    """Train one epoch; returns train_loss (mean, NaN if diverged), train_ce (its classification part, without
    regulariser penalties), head/backbone grad norms (means), diverged.

    ``check()`` runs before every batch and may raise :class:`StopEpoch`. On a non-finite loss the
    epoch ends at once with ``diverged = 1``.
    """
    model, opt = parts.model, parts.optimizer
    model.train()
    loss_sum, ce_sum, n_steps = 0.0, 0.0, 0
    head_sum = torch.zeros((), device=parts.device)
    body_sum = torch.zeros((), device=parts.device)
    n_head = n_body = 0
    trainable_head = [p for p in parts.head_params if p.requires_grad]
    trainable_body = [p for p in parts.body_params if p.requires_grad]
    trainable = trainable_head + trainable_body
    for x, y in loader:
        check()
        if BATCH_HOOK is not None:
            BATCH_HOOK(len(x))
        x = x.to(parts.device, non_blocking=True)
        y = y.to(parts.device, non_blocking=True)
        target = y
        if parts.mixup is not None:
            x, target = parts.mixup(x, y)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=parts.device.type, dtype=torch.float16, enabled=parts.amp):
            out = model(x)
            loss = parts.loss_fn(out, target)
            ce_value = loss.detach()
            if parts.regularizers is not None and parts.regularizers.active:
                for term in parts.regularizers.penalty(model, x, target).values():
                    loss = loss + term
        value = float(loss.detach())
        if not math.isfinite(value):
            return {"train_loss": math.nan, "train_ce": math.nan, "head_grad_norm": math.nan,
                    "backbone_grad_norm": math.nan, "diverged": 1}  # fmt: skip
        parts.scaler.scale(loss).backward()
        parts.scaler.unscale_(opt)
        h, b = _norm(trainable_head), _norm(trainable_body)
        if h is not None:
            head_sum += h
            n_head += 1
        if b is not None:
            body_sum += b
            n_body += 1
        if parts.clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(trainable, parts.clip_grad)
        parts.scaler.step(opt)
        parts.scaler.update()
        loss_sum += value
        ce_sum += float(ce_value)
        n_steps += 1
    return {
        "train_loss": loss_sum / n_steps if n_steps else math.nan,
        "train_ce": ce_sum / n_steps if n_steps else math.nan,
        "head_grad_norm": float(head_sum) / n_head if n_head else math.nan,
        "backbone_grad_norm": float(body_sum) / n_body if n_body else math.nan,
        "diverged": 0 if n_steps else 1,
    }


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: DataLoader, device: torch.device, amp: bool, num_classes: int
) -> dict[str, float]:
    """Validation cross-entropy (mean) and top-1 / top-5 accuracy as fractions (top-5 = top-C if C < 5)."""
    model.eval()
    k = min(5, num_classes)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    top1 = torch.zeros((), device=device, dtype=torch.long)
    top5 = torch.zeros((), device=device, dtype=torch.long)
    n = 0
    for x, y in loader:
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
            out = model(x)
        out = out.float()
        loss_sum += nn.functional.cross_entropy(out, y, reduction="sum").double()
        pred = out.topk(k, dim=1).indices
        hit = pred == y[:, None]
        top1 += hit[:, 0].sum()
        top5 += hit.any(dim=1).sum()
        n += len(y)
    return {"eval_loss": float(loss_sum) / n, "eval_top1": int(top1) / n, "eval_top5": int(top5) / n}
