"""StochNorm keeps BatchNormAct's activation and mixes running and batch statistics per channel."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from metagen._timm import import_timm
from metagen.finetune.stochnorm import StochNormMixin, convert_to_stoch_norm

timm = import_timm()


def test_conversion_keeps_activation_and_is_batchnorm_in_eval():
    model = timm.create_model("mobilevit_xxs", num_classes=3).eval()
    converted = copy.deepcopy(model)
    n = convert_to_stoch_norm(converted)
    acts = [type(m.act) for m in model.modules() if isinstance(m, timm.layers.BatchNormAct2d)]
    bn_act = [m for m in converted.modules() if isinstance(m, timm.layers.BatchNormAct2d)]
    assert n >= len(bn_act) > 0
    assert all(isinstance(m, StochNormMixin) for m in bn_act)
    assert [type(m.act) for m in bn_act] == acts and torch.nn.SiLU in acts
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), converted(x))  # eval: plain BN (+ act)
    assert convert_to_stoch_norm(converted) == 0  # idempotent


def test_training_output_per_channel_is_running_or_batch_normalised():
    bn = torch.nn.BatchNorm2d(16)
    assert bn.running_mean is not None and bn.running_var is not None
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    ref = copy.deepcopy(bn)
    assert ref.running_mean is not None and ref.running_var is not None
    convert_to_stoch_norm(bn)
    bn.train()
    x = torch.randn(8, 16, 4, 4)
    z_running = F.batch_norm(x, ref.running_mean, ref.running_var, ref.weight, ref.bias, False, 0.0, ref.eps)
    z_batch = F.batch_norm(
        x, ref.running_mean.clone(), ref.running_var.clone(), ref.weight, ref.bias, True, 0.1, ref.eps
    )
    out = bn(x)
    which = []
    for c in range(16):
        if torch.allclose(out[:, c], z_running[:, c], atol=1e-6):
            which.append(0)
        else:
            assert torch.allclose(out[:, c], z_batch[:, c], atol=1e-6)
            which.append(1)
    assert 0 < sum(which) < 16  # p = 0.5: both branches occur (16 channels)
    assert not torch.equal(bn.running_mean, ref.running_mean)  # running stats updated as in BatchNorm
    assert bn.num_batches_tracked is not None and int(bn.num_batches_tracked) == 1


def test_activation_applied_after_mixing():
    layer = timm.layers.BatchNormAct2d(8, act_layer=torch.nn.ReLU)
    convert_to_stoch_norm(layer)
    layer.train()
    out = layer(torch.randn(4, 8, 3, 3))
    assert (out >= 0).all()
