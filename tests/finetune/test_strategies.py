"""Each strategy runs inside the training loop and has its effect there."""

from __future__ import annotations

import math

import polars as pl
import pytest
import torch

from metagen._timm import import_timm
from metagen.finetune import finetune
from metagen.finetune.loop import StepParts, train_epoch
from metagen.finetune.models import WeightsSource, build_model, file_provenance
from metagen.store import StoreReader
from tests.finetune.conftest import BN_MODEL, make_cfg

timm = import_timm()


def stored(store) -> dict:
    return StoreReader(store).scan_runs().collect().row(0, named=True)


@pytest.fixture
def weights_file(tmp_path):
    torch.manual_seed(1)
    path = tmp_path / "mobilevit_xxs.pth"
    torch.save(timm.create_model("mobilevit_xxs", pretrained=False).state_dict(), path)
    return path


def test_regularisers_stochnorm_and_cotuning_train_with_local_weights(tiny_dataset, store, tmp_path, weights_file):
    hp = {"sp_reg": 0.01, "delta_reg": 0.01, "bss_reg": 0.01, "cotuning_reg": 1.0, "stoch_norm": True,
          "smoothing": 0.1, "drop": 0.3, "amp": True}  # fmt: skip
    cfg = make_cfg(tiny_dataset, store, tmp_path, model=BN_MODEL, epochs=1, hp=hp, pretrained="auto",
                   weights_file=str(weights_file), keep_checkpoint=True)  # fmt: skip
    result = finetune(cfg)
    assert result.status == "ok", result.message
    run = stored(store)
    assert run["pretrained_source"] == file_provenance(weights_file) and run["amp"] is True  # amp: CUDA only
    assert run["pretrained_source"].endswith(":mobilevit_xxs.pth") and "/" not in run["pretrained_source"]
    state = torch.load(tmp_path / "ckpt" / result.run_id / "last.pt", weights_only=False)
    rel = state["relationship"]
    assert rel.shape == (4, 1000) and torch.allclose(rel.sum(1), torch.ones(4), atol=1e-5)


@pytest.mark.parametrize(
    "hp",
    [
        {"mixup": 0.4, "cutmix": 0.0, "mixup_prob": 1.0},
        {"mixup": 0.0, "cutmix": 1.0, "mixup_prob": 0.5, "smoothing": 0.05},
        {"data_augmentation": "random_augment", "ra_num_ops": 2, "ra_magnitude": 9, "clip_grad": 1.0},
        {"data_augmentation": "auto_augment", "auto_augment": "original", "layer_decay": 0.75},
        {
            "opt": "adamp",
            "opt_betas": "0 0.999",
            "sched": "step",
            "decay_epochs": 10,
            "decay_rate": 0.1,
            "warmup_epochs": 5,
            "warmup_lr": 0.00001,
        },
    ],
    ids=["mixup", "cutmix", "randaugment-clip", "autoaugment-layerdecay", "adamp-step-warmup"],
)
def test_strategy_runs_in_the_loop(tiny_dataset, store, tmp_path, hp):
    result = finetune(make_cfg(tiny_dataset, store, tmp_path, epochs=1, hp=hp))
    assert result.status == "ok", result.message
    c = StoreReader(store).scan_curves().collect()
    assert math.isfinite(c["train_loss"][0])
    if "warmup_lr" in hp:
        assert c["lr"][0] == pytest.approx(0.00001)  # the first epoch trains at the warm-up LR


def test_clip_grad_bounds_each_update():
    torch.manual_seed(0)
    model = timm.create_model("edgenext_xx_small", num_classes=3)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    params = list(model.parameters())
    head = [p for n, p in model.named_parameters() if n.startswith("head")]
    body = [p for n, p in model.named_parameters() if not n.startswith("head")]
    parts = StepParts(model, opt, torch.nn.CrossEntropyLoss(), torch.amp.GradScaler("cpu", enabled=False),
                      torch.device("cpu"), False, 1e-3, head, body)  # fmt: skip
    batch = [(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0]))]
    out = train_epoch(parts, batch, lambda: None)
    step = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(params, before, strict=True)))
    assert float(step) == pytest.approx(1e-3, rel=1e-3)  # lr 1 x clipped norm 1e-3
    assert out["backbone_grad_norm"] > 1e-3  # the recorded norm is before clipping


def test_amp_step_runs_in_float16_scales_the_loss_and_unscales_before_clipping():
    """The AMP branch of the step (autocast fp16 + GradScaler), run on CPU: the same code CUDA runs."""

    def step(amp: bool) -> tuple[torch.nn.Module, list[torch.Tensor], dict, torch.amp.GradScaler, list]:
        torch.manual_seed(0)
        model = timm.create_model("edgenext_xx_small", num_classes=3)
        before = [p.detach().clone() for p in model.parameters()]
        dtypes: list[torch.dtype] = []
        model.head.fc.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, enabled=amp)
        head = [p for n, p in model.named_parameters() if n.startswith("head")]
        body = [p for n, p in model.named_parameters() if not n.startswith("head")]
        parts = StepParts(model, torch.optim.SGD(model.parameters(), lr=1.0), torch.nn.CrossEntropyLoss(), scaler,
                          torch.device("cpu"), amp, 1e-3, head, body)  # fmt: skip
        out = train_epoch(parts, [(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0]))], lambda: None)
        return model, before, out, scaler, dtypes

    model, before, out, scaler, dtypes = step(amp=True)
    assert dtypes == [torch.float16] and out["diverged"] == 0
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32
    assert scaler.get_scale() == 2.0**10  # finite gradients: the step was taken, the scale kept
    moved = torch.sqrt(
        torch.stack([((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before, strict=True)]).sum()
    )
    assert float(moved) == pytest.approx(1e-3, rel=1e-2)  # clipped after unscaling: not 2**10 times larger
    _, _, ref, _, ref_dtypes = step(amp=False)
    assert ref_dtypes == [torch.float32]
    assert out["backbone_grad_norm"] == pytest.approx(ref["backbone_grad_norm"], rel=0.05)  # unscaled norms


def test_dropout_rate_reaches_the_head():
    built = build_model("edgenext_xx_small.in1k", 3, weights=WeightsSource("random"), img_size=32, drop=0.3)
    head = built.model.head
    assert isinstance(head, torch.nn.Module) and isinstance(head.drop, torch.nn.Dropout) and head.drop.p == 0.3


def test_stoch_norm_changes_training_but_not_evaluation(tiny_dataset, tmp_path):
    from metagen.store import StoreMetadata, create_store

    curves = {}
    for flag in (False, True):
        root = tmp_path / f"s{flag}"
        create_store(root, StoreMetadata(name="s", description="s"))
        finetune(make_cfg(tiny_dataset, root, tmp_path, model=BN_MODEL, epochs=1, hp={"stoch_norm": flag}))
        curves[flag] = StoreReader(root).scan_curves().collect()
    assert curves[False]["train_loss"][0] != curves[True]["train_loss"][0]
    assert pl.concat([curves[False], curves[True]]).height == 2
