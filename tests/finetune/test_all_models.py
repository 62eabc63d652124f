"""Every model of the v1 space builds, freezes, taps its features and takes one training step."""

from __future__ import annotations

import pytest
import torch

from metagen.finetune.freeze import apply_freeze
from metagen.finetune.loop import StepParts, train_epoch
from metagen.finetune.models import WeightsSource, build_model, is_head
from metagen.finetune.regularizers import Regularizers
from metagen.finetune.stochnorm import convert_to_stoch_norm
from metagen.search_space import SearchSpace

MODELS = [m.name for m in SearchSpace.load("v1").models]


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_one_step(name):
    torch.manual_seed(0)
    built = build_model(name, 3, weights=WeightsSource("random"), img_size=32, drop=0.1)
    model = built.model
    convert_to_stoch_norm(model)
    apply_freeze(model, 0.6)
    heads = ("head", "aux_head", "classifier", "fc")
    head = [p for n, p in model.named_parameters() if is_head(n, heads)]
    body = [p for n, p in model.named_parameters() if not is_head(n, heads)]
    assert all(p.requires_grad for p in head) and any(p.requires_grad for p in body)
    assert not all(p.requires_grad for p in body)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    regs = Regularizers(model, bss=0.01)
    loss = torch.nn.CrossEntropyLoss()
    parts = StepParts(model, opt, loss, scaler, torch.device("cpu"), False, 1.0, head, body, regs)
    out = train_epoch(parts, [(torch.randn(2, 3, 32, 32), torch.tensor([0, 2]))], lambda: None)
    assert out["diverged"] == 0 and out["head_grad_norm"] > 0
