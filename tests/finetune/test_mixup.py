"""MixUp / CutMix from an explicit generator."""

from __future__ import annotations

import numpy as np
import torch

from metagen.finetune.mixup import SeededMixup


def mix(alpha=0.0, cut=0.0, prob=1.0, seed=0, smoothing=0.0):
    m = SeededMixup(np.random.default_rng(seed), mixup_alpha=alpha, cutmix_alpha=cut, prob=prob,
                    switch_prob=0.5, label_smoothing=smoothing, num_classes=3)  # fmt: skip
    x = torch.arange(4 * 3 * 8 * 8, dtype=torch.float32).reshape(4, 3, 8, 8)
    y = torch.tensor([0, 1, 2, 0])
    return x.clone(), *m(x, y)


def test_mixup_is_reproducible_and_targets_are_distributions():
    _, xa, ta = mix(alpha=1.0, seed=3)
    _, xb, tb = mix(alpha=1.0, seed=3)
    _, xc, _ = mix(alpha=1.0, seed=4)
    assert torch.equal(xa, xb) and torch.equal(ta, tb) and not torch.equal(xa, xc)
    assert torch.allclose(ta.sum(1), torch.ones(4))


def test_mixup_blends_and_cutmix_pastes_a_box():
    x0, xm, t = mix(alpha=1.0, seed=1)
    lam = float(t[1, 1])  # sample 1 (class 1) is mixed with the flipped batch's sample 2 (class 2)
    assert 0 < lam < 1 and abs(float(t[1, 2]) - (1 - lam)) < 1e-6
    assert torch.allclose(xm, lam * x0 + (1 - lam) * x0.flip(0))
    x0, xc, _ = mix(cut=1.0, seed=2)
    changed = xc != x0
    assert changed.any() and not changed.all()
    assert torch.equal(xc[changed], x0.flip(0)[changed])


def test_prob_zero_does_not_mix_but_smooths():
    x0, x, t = mix(alpha=1.0, prob=0.0, smoothing=0.1)
    assert torch.equal(x, x0)
    assert torch.allclose(t[0], torch.tensor([0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3]))
