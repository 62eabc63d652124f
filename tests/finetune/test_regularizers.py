"""L2-SP, DELTA, BSS and Co-Tuning compute what they claim."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from metagen._timm import import_timm
from metagen.finetune.models import classifier, head_names
from metagen.finetune.regularizers import (
    FeatureTap,
    Regularizers,
    bss_penalty,
    cotuning_loss,
    delta_penalty,
    sp_penalty,
)

timm = import_timm()


def small_model():
    torch.manual_seed(0)
    return timm.create_model("edgenext_xx_small", num_classes=3)


def test_feature_tap_captures_the_classifier_input():
    model = small_model().eval()
    tap = FeatureTap(model)
    x = torch.randn(2, 3, 32, 32)
    logits = model(x)
    f = tap.pop()
    assert f.shape == (2, model.num_features)
    assert torch.allclose(classifier(model)(f), logits, atol=1e-6)
    tap.remove()


def test_sp_is_squared_distance_to_the_start_over_trainable_body():
    model = small_model()
    regs = Regularizers(model, sp=0.1)
    with torch.no_grad():
        value = float(sp_penalty(model, regs.start, regs.heads))
    assert value == 0.0
    with torch.no_grad():
        model.stem[0].weight.add_(1.0)
        model.get_classifier().weight.add_(5.0)  # the head does not count
    expected = model.stem[0].weight.numel()
    assert float(sp_penalty(model, regs.start, regs.heads).detach()) == pytest.approx(expected, rel=1e-5)
    model.stem[0].weight.requires_grad_(False)  # frozen parameters do not count
    assert float(sp_penalty(model, regs.start, regs.heads).detach()) == pytest.approx(0.0, abs=1e-6)
    x = torch.randn(2, 3, 32, 32)
    model(x)
    assert set(regs.penalty(model, x, torch.tensor([0, 1]))) == {"sp"}


def test_bss_is_the_smallest_singular_value_squared():
    f = torch.diag(torch.tensor([3.0, 2.0, 0.5]))
    assert float(bss_penalty(f)) == pytest.approx(0.25)
    g = torch.randn(6, 10)
    assert float(bss_penalty(g)) == pytest.approx(float(torch.linalg.svdvals(g).min() ** 2), rel=1e-5)


def test_delta_compares_with_a_frozen_copy_of_the_start():
    model = small_model().eval()
    regs = Regularizers(model, delta=1.0)
    x = torch.randn(2, 3, 32, 32)
    model(x)
    assert float(regs.penalty(model, x, torch.tensor([0, 1]))["delta"].detach()) == pytest.approx(0.0, abs=1e-8)
    with torch.no_grad():
        model.stages[-1].blocks[-1].mlp.fc2.weight.mul_(2.0)
    model(x)
    term = regs.penalty(model, x, torch.tensor([0, 1]))["delta"]
    assert float(term.detach()) > 0
    assert regs.source_model is not None and all(not p.requires_grad for p in regs.source_model.parameters())
    assert float(delta_penalty(torch.ones(2, 3), torch.zeros(2, 3))) == 6.0


def test_cotuning_relationship_and_loss():
    model = small_model()
    source_head = torch.nn.Linear(model.num_features, 7)
    regs = Regularizers(model, cotuning=2.0, source_head=source_head)
    x = torch.randn(6, 3, 32, 32)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    regs.fit_relationship(model, [(x, y)], num_classes=3)
    rel = regs.relationship
    assert rel is not None and rel.shape == (3, 7)
    assert torch.allclose(rel.sum(1), torch.ones(3))
    model.eval()
    tap = FeatureTap(model)
    model(x)
    probs = F.softmax(source_head(tap.pop()), dim=1)
    assert torch.allclose(rel[0], probs[:2].mean(0), atol=1e-6)
    logits = torch.randn(6, 7)
    manual = -(rel[y] * F.log_softmax(logits, 1)).sum(1).mean()
    assert float(cotuning_loss(logits, rel, y)) == pytest.approx(float(manual))
    soft = F.one_hot(y, 3).float() * 0.9 + 0.1 / 3
    assert float(cotuning_loss(logits, rel, soft)) == pytest.approx(float(manual))  # argmax of soft targets


def test_cotuning_without_source_head_is_an_error():
    with pytest.raises(ValueError, match="source head"):
        Regularizers(small_model(), cotuning=1.0, source_head=None)


def test_heads_excluded_and_penalty_terms_are_weighted():
    model = small_model().train()
    regs = Regularizers(model, sp=0.5, bss=0.25)
    x = torch.randn(4, 3, 32, 32)
    model(x)
    terms = regs.penalty(model, x, torch.tensor([0, 1, 2, 0]))
    assert set(terms) == {"sp", "bss"} and head_names(model) == ("head",)
    assert all(torch.isfinite(t) for t in terms.values())
