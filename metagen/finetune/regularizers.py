"""Transfer-learning regularisers of the search space (reference §2.1.5, after thuml's TLlib).

Features are the classifier's input (the pooled pre-logit features, shape (B, D)), captured by a
forward pre-hook on ``model.get_classifier()``: one generic definition for every timm family.

* L2-SP: ``w * sum ||theta - theta_0||^2`` over the trainable non-head parameters (no 1/2, as the reference).
* DELTA (behavioural): ``w * ||f_target - f_source||^2`` on the features; the source is a frozen copy
  of the model as prepared for finetuning, run in eval mode.
* BSS: ``w * sigma_min(F)^2``, the smallest singular value (k = 1) of the batch feature matrix F (B, D).
* Co-Tuning: ``w * mean_b CE(source_head(f_b), p(y_s | y_t = y_b))`` with the relationship
  ``p(y_s | y_t)`` (C_t, K_s) averaged from the source head's softmax over the training images.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from metagen.finetune.models import classifier, head_names, is_head


class FeatureTap:
    """Records the input of a model's classifier at every forward pass, as (B, D)."""

    def __init__(self, model: nn.Module):
        self.features: torch.Tensor | None = None
        self._handle: RemovableHandle = classifier(model).register_forward_pre_hook(self._hook)

    def _hook(self, module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        self.features = args[0].flatten(1)

    def pop(self) -> torch.Tensor:
        """The features of the last forward pass (B, D); cleared afterwards."""
        if self.features is None:
            raise RuntimeError("no features captured: the classifier was not called in the forward pass")
        f, self.features = self.features, None
        return f

    def remove(self) -> None:
        """Detach the hook."""
        self._handle.remove()


def sp_penalty(model: nn.Module, start: dict[str, torch.Tensor], heads: tuple[str, ...]) -> torch.Tensor:
    """``sum ||theta - theta_0||^2`` over the trainable non-head parameters (a scalar tensor)."""
    terms = [
        (p - start[n]).pow(2).sum()
        for n, p in model.named_parameters()
        if p.requires_grad and not is_head(n, heads) and n in start
    ]
    if not terms:
        return torch.zeros((), device=next(model.parameters()).device)
    return torch.stack(terms).sum()


def bss_penalty(features: torch.Tensor) -> torch.Tensor:
    """Square of the smallest singular value of the feature matrix (B, D) -> scalar."""
    return torch.linalg.svdvals(features.float())[-1].pow(2)


def delta_penalty(features: torch.Tensor, source_features: torch.Tensor) -> torch.Tensor:
    """``||f_target - f_source||^2`` over the batch (B, D), source detached -> scalar."""
    return (features.float() - source_features.detach().float()).pow(2).sum()


def cotuning_loss(source_logits: torch.Tensor, relationship: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Co-Tuning's soft cross-entropy of source logits (B, K_s) against ``relationship[labels]``.

    ``labels`` are class indices (B,) or soft targets (B, C), of which the argmax is taken (as the reference).
    """
    if labels.ndim > 1:
        labels = labels.argmax(dim=1)
    target = relationship[labels]
    return -(target * F.log_softmax(source_logits.float(), dim=-1)).sum(dim=-1).mean()


def apply_source_head(source_head: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """Source logits (B, K_s) from classifier-input features (B, D); handles 1x1-conv heads (dla)."""
    if isinstance(source_head, nn.Conv2d):
        return source_head(features[:, :, None, None]).flatten(1)
    return source_head(features)


class Regularizers:
    """The active regularisers of a run and their state (start point, source model, relationship).

    Args:
        model: the model, prepared for finetuning (head replaced, StochNorm applied).
        sp, delta, bss, cotuning: the weights from the search space (0 = off).
        source_head: the pretrained classifier (needed when ``cotuning > 0``).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        sp: float = 0.0,
        delta: float = 0.0,
        bss: float = 0.0,
        cotuning: float = 0.0,
        source_head: nn.Module | None = None,
    ):
        self.sp, self.delta, self.bss, self.cotuning = float(sp), float(delta), float(bss), float(cotuning)
        self.heads = head_names(model)
        self.start: dict[str, torch.Tensor] = {}
        if self.sp > 0:
            self.start = {n: p.detach().clone() for n, p in model.named_parameters() if not is_head(n, self.heads)}
        self.source_model: nn.Module | None = None
        if self.delta > 0:
            self.source_model = copy.deepcopy(model).eval()
            for p in self.source_model.parameters():
                p.requires_grad_(False)
            self.source_tap = FeatureTap(self.source_model)
        if self.cotuning > 0 and source_head is None:
            raise ValueError("Co-Tuning needs the pretrained source head, which a randomly initialised model lacks")
        self.source_head = source_head
        self.relationship: torch.Tensor | None = None
        self.tap = FeatureTap(model) if self.needs_features else None

    @property
    def needs_features(self) -> bool:
        """Whether the training step must capture the classifier's input."""
        return self.delta > 0 or self.bss > 0 or self.cotuning > 0

    @property
    def active(self) -> bool:
        """Whether any regulariser adds to the loss."""
        return self.needs_features or self.sp > 0

    def to(self, device: torch.device) -> Regularizers:
        """Move the kept tensors and models to ``device``."""
        self.start = {k: v.to(device) for k, v in self.start.items()}
        if self.source_model is not None:
            self.source_model.to(device)
        if self.source_head is not None:
            self.source_head.to(device)
        if self.relationship is not None:
            self.relationship = self.relationship.to(device)
        return self

    @torch.no_grad()
    def fit_relationship(
        self, model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], num_classes: int
    ) -> None:
        """Learn ``p(y_s | y_t)`` (C_t, K_s) from (images, labels) batches with the model in eval mode."""
        assert self.source_head is not None and self.tap is not None
        was_training = model.training
        model.eval()
        sums: torch.Tensor | None = None
        counts: torch.Tensor | None = None
        try:
            for x, y in batches:
                model(x)
                probs = F.softmax(apply_source_head(self.source_head, self.tap.pop()).float(), dim=1)
                if sums is None or counts is None:
                    sums = torch.zeros(num_classes, probs.shape[1], device=probs.device)
                    counts = torch.zeros(num_classes, device=probs.device)
                sums.index_add_(0, y.to(probs.device), probs)
                counts.index_add_(0, y.to(probs.device), torch.ones_like(y, dtype=probs.dtype, device=probs.device))
        finally:
            model.train(was_training)
        assert sums is not None and counts is not None
        rel = sums / counts.clamp_min(1)[:, None]
        rel[counts == 0] = 1.0 / rel.shape[1]
        self.relationship = rel

    def penalty(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """The weighted regulariser terms of one training step (call right after ``model(x)``).

        Args:
            model: the model being trained.
            x: the step's input images (B, 3, H, W) (for DELTA's source model).
            labels: class indices (B,) or soft targets (B, C) (for Co-Tuning).
        """
        terms: dict[str, torch.Tensor] = {}
        features = self.tap.pop() if self.tap is not None else None
        if self.sp > 0:
            terms["sp"] = self.sp * sp_penalty(model, self.start, self.heads)
        if self.delta > 0:
            assert self.source_model is not None and features is not None
            with torch.no_grad():
                self.source_model(x)
            terms["delta"] = self.delta * delta_penalty(features, self.source_tap.pop())
        if self.bss > 0:
            assert features is not None
            terms["bss"] = self.bss * bss_penalty(features)
        if self.cotuning > 0:
            assert self.source_head is not None and features is not None
            if self.relationship is None:
                raise RuntimeError("Co-Tuning's relationship was not fitted (call fit_relationship first)")
            terms["cotuning"] = self.cotuning * cotuning_loss(
                apply_source_head(self.source_head, features), self.relationship, labels
            )
        return terms
