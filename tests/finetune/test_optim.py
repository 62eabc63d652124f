"""Optimizers, schedules and losses as the search space defines them."""

from __future__ import annotations

import itertools

import pytest
import torch

from metagen._timm import import_timm
from metagen.finetune.freeze import apply_freeze
from metagen.finetune.optim import build_loss, build_optimizer, build_scheduler, decay_milestones, mean_lr

timm = import_timm()


def model():
    return timm.create_model("edgenext_xx_small", num_classes=3)


BASE = {"lr": 0.01, "weight_decay": 0.0001, "layer_decay": None}


def test_optimizers():
    sgd = build_optimizer(model(), {**BASE, "opt": "sgd"})
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.9
    mom = build_optimizer(model(), {**BASE, "opt": "momentum", "momentum": 0.8})
    assert not mom.defaults["nesterov"] and mom.defaults["momentum"] == 0.8
    adam = build_optimizer(model(), {**BASE, "opt": "adam", "opt_betas": "0 0.99"})
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["betas"] == (0.0, 0.99)
    adamw = build_optimizer(model(), {**BASE, "opt": "adamw", "opt_betas": "0.9 0.999"})
    assert isinstance(adamw, torch.optim.AdamW)
    adamp = build_optimizer(model(), {**BASE, "opt": "adamp", "opt_betas": "0.9 0.99"})
    assert type(adamp).__name__ == "AdamP" and adamp.defaults["betas"] == (0.9, 0.99)
    no_wd = [g for g in adamw.param_groups if g["weight_decay"] == 0.0]
    assert no_wd and all(p.ndim <= 1 for g in no_wd for p in g["params"])  # no decay on biases / norms


def test_layer_decay_scales_lr_by_depth():
    opt = build_optimizer(model(), {**BASE, "opt": "adamw", "opt_betas": "0.9 0.999", "layer_decay": 0.65})
    scales = sorted({g["lr_scale"] for g in opt.param_groups})
    assert len(scales) > 5 and scales[-1] == 1.0 and scales[0] < 0.01
    sched = build_scheduler(opt, {"sched": None}, 50)
    sched.step(1)
    assert {round(g["lr"] / g["lr_scale"], 12) for g in opt.param_groups} == {0.01}  # the scheduler applies lr_scale


def test_frozen_parameters_are_in_the_optimizer_but_not_updated():
    m = model()
    opt = build_optimizer(m, {**BASE, "opt": "sgd"})
    apply_freeze(m, 1.0)
    n_params = sum(len(g["params"]) for g in opt.param_groups)
    assert n_params == len(list(m.parameters()))
    before = m.stem[0].weight.detach().clone()
    m(torch.randn(2, 3, 32, 32)).sum().backward()
    opt.step()
    assert torch.equal(before, m.stem[0].weight)
    apply_freeze(m, 0.0)  # LP-FT: now it trains, already with its group
    m(torch.randn(2, 3, 32, 32)).sum().backward()
    opt.step()
    assert not torch.equal(before, m.stem[0].weight)


def lrs(hps, epochs=12, schedule=50, metric=lambda e: 0.5):
    opt = build_optimizer(model(), {**BASE, "opt": "sgd"})
    sched = build_scheduler(opt, hps, schedule)
    out = []
    for e in range(epochs):
        out.append(mean_lr(opt))
        sched.step(e + 1, metric(e))
    return out


def test_schedules():
    const = lrs({"sched": None})
    assert const == [0.01] * 12
    cos = lrs({"sched": "cosine"}, epochs=50)
    assert cos[0] == 0.01 and all(a > b for a, b in itertools.pairwise(cos[1:])) and cos[-1] < 1e-4
    step = lrs({"sched": "step", "decay_epochs": 10, "decay_rate": 0.5}, epochs=21)
    assert step[9] == 0.01 and step[10] == pytest.approx(0.005) and step[20] == pytest.approx(0.0025)
    assert decay_milestones(10, 50) == [10, 20, 30, 40]
    multi = lrs({"sched": "multistep", "decay_epochs": 10, "decay_rate": 0.1}, epochs=21)
    # timm's multistep decays at the end of epoch m - 1 (bisect on t + 1), one epoch before its step schedule
    assert multi[8] == 0.01 and multi[9] == pytest.approx(0.001) and multi[19] == pytest.approx(0.0001)
    plateau = lrs({"sched": "plateau", "patience_epochs": 2, "decay_rate": 0.1}, epochs=8)
    assert plateau[0] == 0.01 and plateau[-1] < 0.01  # flat metric: decays after the patience
    warm = lrs({"sched": "cosine", "warmup_epochs": 5, "warmup_lr": 1e-5}, epochs=7)
    assert warm[0] == pytest.approx(1e-5) and warm[0] < warm[1] < warm[4] < warm[5]


def test_losses():
    assert type(build_loss({"mixup": 0.2, "cutmix": 0.0, "smoothing": 0.1})).__name__ == "SoftTargetCrossEntropy"
    ls = build_loss({"mixup": 0.0, "cutmix": 0.0, "smoothing": 0.1})
    assert type(ls).__name__ == "LabelSmoothingCrossEntropy" and ls.smoothing == 0.1
    assert isinstance(build_loss({"mixup": 0.0, "cutmix": 0.0, "smoothing": 0.0}), torch.nn.CrossEntropyLoss)
