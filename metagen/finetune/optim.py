"""Optimizer, LR schedule and loss of a pipeline, with timm's factories (reference §2.1.6-9)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from metagen._timm import import_timm

SGD_MOMENTUM = 0.9
"""The reference's ``sgd`` is Nesterov SGD with momentum 0.9 (its parser default); ``momentum`` is plain SGD."""


def parse_betas(text: str | None) -> tuple[float, float] | None:
    """``"0.9 0.999"`` -> (0.9, 0.999)."""
    if text is None:
        return None
    b1, b2 = (float(t) for t in str(text).split())
    return b1, b2


def build_optimizer(model: nn.Module, hps: Mapping[str, Any]) -> torch.optim.Optimizer:
    """``timm.optim.create_optimizer_v2`` over every parameter of the model.

    Built while every parameter may train; freezing (``requires_grad=False``) then leaves a
    parameter's gradient ``None`` and the optimizer skips it, so layers unfrozen later (LP-FT) are
    already in their layer-decay group. No weight decay on biases and 1-d parameters (timm's default).
    """
    timm = import_timm()
    opt = hps["opt"]
    kwargs: dict[str, Any] = {}
    if opt == "sgd":
        kwargs["momentum"] = SGD_MOMENTUM
    elif opt == "momentum":
        kwargs["momentum"] = float(hps["momentum"])
    betas = parse_betas(hps.get("opt_betas"))
    if betas is not None and opt in ("adam", "adamw", "adamp"):
        kwargs["betas"] = betas
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(True)
    try:
        return timm.optim.create_optimizer_v2(
            model,
            opt=opt,
            lr=float(hps["lr"]),
            weight_decay=float(hps["weight_decay"]),
            layer_decay=hps.get("layer_decay"),
            **kwargs,
        )
    finally:
        for n, p in model.named_parameters():
            p.requires_grad_(flags[n])


def decay_milestones(decay_epochs: int, schedule_epochs: int) -> list[int]:
    """Multistep milestones ``[d, 2d, ...]`` below the schedule's length."""
    return list(range(int(decay_epochs), schedule_epochs, int(decay_epochs)))


def build_scheduler(optimizer: torch.optim.Optimizer, hps: Mapping[str, Any], schedule_epochs: int) -> Any:
    """A per-epoch timm scheduler: ``sched`` None -> constant, cosine, step, multistep, plateau (max top-1).

    Warm-up from ``warmup_lr`` over ``warmup_epochs``. ``step`` decays by ``decay_rate`` every
    ``decay_epochs``; ``multistep`` at ``[d, 2d, ...]`` (the reference's multistep never decayed).
    """
    timm = import_timm()
    sched = hps.get("sched") or "constant"
    kwargs: dict[str, Any] = {}
    if sched in ("step", "multistep"):
        kwargs["decay_rate"] = float(hps["decay_rate"])
        kwargs["decay_epochs"] = int(hps["decay_epochs"])
        if sched == "multistep":
            kwargs["decay_milestones"] = decay_milestones(int(hps["decay_epochs"]), schedule_epochs)
    if sched == "plateau":
        kwargs["patience_epochs"] = int(hps["patience_epochs"])
        kwargs["plateau_mode"] = "max"
    with warnings.catch_warnings():  # plateau's state is checkpointed by metagen.finetune.runner, not by timm
        warnings.filterwarnings("ignore", message="PlateauLRScheduler is deprecated", category=FutureWarning)
        scheduler, _ = timm.scheduler.create_scheduler_v2(
            optimizer,
            sched=sched,
            num_epochs=schedule_epochs,
            min_lr=0.0,
            warmup_lr=float(hps.get("warmup_lr", 0.0)),
            warmup_epochs=int(hps.get("warmup_epochs", 0)),
            **kwargs,
        )
    return scheduler


def mixup_active(hps: Mapping[str, Any]) -> bool:
    """MixUp/CutMix is on when either alpha is positive (as the reference)."""
    return float(hps.get("mixup", 0.0)) > 0 or float(hps.get("cutmix", 0.0)) > 0


def build_loss(hps: Mapping[str, Any]) -> nn.Module:
    """SoftTargetCrossEntropy with MixUp/CutMix (smoothing folded into the targets), else
    LabelSmoothingCrossEntropy when ``smoothing > 0``, else cross-entropy."""
    timm = import_timm()
    if mixup_active(hps):
        return timm.loss.SoftTargetCrossEntropy()
    if float(hps.get("smoothing", 0.0)) > 0:
        return timm.loss.LabelSmoothingCrossEntropy(smoothing=float(hps["smoothing"]))
    return nn.CrossEntropyLoss()


def mean_lr(optimizer: torch.optim.Optimizer) -> float:
    """Mean learning rate over parameter groups (the curve's ``lr``)."""
    lrs = [g["lr"] for g in optimizer.param_groups]
    return float(sum(lrs) / len(lrs))
