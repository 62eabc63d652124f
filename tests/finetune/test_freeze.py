"""pct_to_freeze: which parameters train."""

from __future__ import annotations

import pytest

from metagen._timm import import_timm
from metagen.finetune.freeze import apply_freeze, trainable_mask
from metagen.finetune.models import head_names, is_head

timm = import_timm()


@pytest.mark.parametrize("arch", ["edgenext_xx_small", "dla46x_c", "mobilevit_xxs"])
def test_freezing_is_monotone_keeps_the_head_and_freezes_a_prefix(arch):
    model = timm.create_model(arch, num_classes=3)
    heads = head_names(model)
    names = [n for n, _ in model.named_parameters()]
    previous = None
    for pct in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        mask = trainable_mask(model, pct)
        assert all(mask[n] for n in names if is_head(n, heads))
        body = [mask[n] for n in names if not is_head(n, heads)]
        first_trainable = body.index(True) if True in body else len(body)
        assert all(body[first_trainable:]), f"{arch} pct={pct}: a frozen parameter after a trainable one"
        if previous is not None:
            assert sum(body) <= previous
        previous = sum(body)
    assert all(trainable_mask(model, 0.0).values())
    only_head = trainable_mask(model, 1.0)
    assert {n for n, t in only_head.items() if t} == {n for n in names if is_head(n, heads)}


def test_apply_freeze_sets_requires_grad_and_counts_modules_by_position():
    model = timm.create_model("edgenext_xx_small", num_classes=3)
    n_all = len(list(model.parameters()))
    assert apply_freeze(model, 0.0) == n_all
    n_half = apply_freeze(model, 0.5)
    assert 0 < n_half < n_all
    assert model.stem[0].weight.requires_grad is False
    assert model.stages[-1].blocks[-1].mlp.fc2.weight.requires_grad is True
    with pytest.raises(ValueError, match="fraction"):
        trainable_mask(model, 1.5)


def test_root_owned_parameters_follow_the_first_module():
    model = timm.create_model("deit3_small_patch16_384", num_classes=3, img_size=32)
    assert trainable_mask(model, 0.0)["cls_token"] is True
    assert trainable_mask(model, 0.2)["cls_token"] is False
