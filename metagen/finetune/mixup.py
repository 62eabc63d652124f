"""timm's batch-mode Mixup/CutMix drawing from an explicit ``np.random.Generator``.

timm's ``Mixup`` draws its lambda, mode switch and CutMix box from numpy's global RNG; this
subclass overrides exactly those draws (batch mode only, the reference's setting) and keeps timm's
target construction (``mixup_target``, label smoothing folded in) and CutMix lambda correction.
"""

from __future__ import annotations

import numpy as np
import torch

from metagen._timm import install_torchvision_shim

install_torchvision_shim()
from timm.data.mixup import Mixup  # noqa: E402 (after the shim)


class SeededMixup(Mixup):
    """``timm.data.Mixup(mode="batch")`` with its randomness from ``rng``.

    Args:
        rng: the generator of every draw (lambda, MixUp/CutMix switch, box position).
        **kwargs: ``timm.data.Mixup`` arguments (mixup_alpha, cutmix_alpha, prob, switch_prob,
            label_smoothing, num_classes).
    """

    def __init__(self, rng: np.random.Generator, **kwargs: object):
        kwargs.setdefault("mode", "batch")
        if kwargs["mode"] != "batch":
            raise ValueError("SeededMixup supports mode='batch' only")
        super().__init__(**kwargs)
        self.rng = rng

    def _params_per_batch(self) -> tuple[float, bool]:
        lam, use_cutmix = 1.0, False
        if self.mixup_enabled and self.rng.random() < self.mix_prob:
            if self.mixup_alpha > 0.0 and self.cutmix_alpha > 0.0:
                use_cutmix = bool(self.rng.random() < self.switch_prob)
                alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
            elif self.mixup_alpha > 0.0:
                alpha = self.mixup_alpha
            else:
                use_cutmix, alpha = True, self.cutmix_alpha
            lam = float(self.rng.beta(alpha, alpha))
        return lam, use_cutmix

    def _mix_batch(self, x: torch.Tensor) -> float:
        lam, use_cutmix = self._params_per_batch()
        if lam == 1.0:
            return 1.0
        if use_cutmix:
            yl, yh, xl, xh = self._box(x.shape, lam)
            x[:, :, yl:yh, xl:xh] = x.flip(0)[:, :, yl:yh, xl:xh]
            if self.correct_lam:
                lam = 1.0 - (yh - yl) * (xh - xl) / float(x.shape[-2] * x.shape[-1])
        else:
            x_flipped = x.flip(0).mul_(1.0 - lam)
            x.mul_(lam).add_(x_flipped)
        return lam

    def _box(self, shape: torch.Size, lam: float) -> tuple[int, int, int, int]:
        """A square CutMix box of area ~(1 - lam) at a uniform centre (timm's ``rand_bbox``, margin 0)."""
        img_h, img_w = shape[-2:]
        ratio = np.sqrt(1 - lam)
        cut_h, cut_w = int(img_h * ratio), int(img_w * ratio)
        cy, cx = int(self.rng.integers(0, img_h)), int(self.rng.integers(0, img_w))
        yl, yh = int(np.clip(cy - cut_h // 2, 0, img_h)), int(np.clip(cy + (cut_h + 1) // 2, 0, img_h))
        xl, xh = int(np.clip(cx - cut_w // 2, 0, img_w)), int(np.clip(cx + (cut_w + 1) // 2, 0, img_w))
        return yl, yh, xl, xh
