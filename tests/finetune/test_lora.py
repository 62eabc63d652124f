"""LoRA: adapters on a tiny random-init timm ViT (B = 0 is the base model, merging, what trains) and a LoRA run of
the runner whose hyperparameters reach the store (``extra_hps``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from metagen._timm import import_timm
from metagen.finetune import finetune
from metagen.finetune.checkpoint import FILENAME, run_dir
from metagen.finetune.errors import HyperparameterError
from metagen.finetune.freeze import apply_freeze, trainable_mask
from metagen.finetune.lora import apply_lora, is_lora_param, lora_targets, merged_state_dict
from metagen.finetune.models import WeightsSource, build_model
from metagen.store import StoreReader
from tests.finetune.conftest import FAST_HP, make_cfg

TINY_VIT = "vit_tiny_patch16_224.augreg_in21k_ft_in1k"


def tiny_vit(seed: int = 0) -> torch.nn.Module:
    """A 2-block ViT with 32-d embeddings on 16 px images (4 patches of 8 px), random init, 3 classes."""
    torch.manual_seed(seed)
    timm = import_timm()
    model = timm.create_model(
        TINY_VIT, pretrained=False, depth=2, embed_dim=32, num_heads=2, img_size=16, patch_size=8, num_classes=3
    )
    return model.eval()


def images(n: int = 4) -> torch.Tensor:
    return torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def test_adapters_with_b_zero_leave_the_model_unchanged_and_merge_to_the_base() -> None:
    model = tiny_vit()
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    x = images()
    with torch.no_grad():
        before = model(x)
    names = apply_lora(model, rank=4, alpha=8.0, targets="qkv")
    assert names == ["blocks.0.attn.qkv", "blocks.1.attn.qkv"]
    with torch.no_grad():
        assert torch.equal(model(x), before)
    merged = merged_state_dict(model)
    assert merged.keys() == base_state.keys()
    assert all(torch.equal(merged[k], base_state[k]) for k in base_state)


def test_only_adapters_and_head_train_and_the_merged_weights_compute_the_same() -> None:
    model = tiny_vit()
    apply_lora(model, rank=2, alpha=4.0, targets="qkv")
    mask = trainable_mask(model, 1.0)
    assert {n for n, t in mask.items() if t} == {
        *(f"blocks.{i}.attn.qkv.lora_{m}" for i in range(2) for m in "AB"),
        "head.weight",
        "head.bias",
    }
    apply_freeze(model, 1.0)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model.train()
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images()), torch.tensor([0, 1, 2, 0])).backward()
        optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, start[n])}
    assert changed == {n for n, t in mask.items() if t}  # every adapter and the head moved, nothing else
    base = tiny_vit(seed=123)  # other weights: merging must overwrite all of them
    base.load_state_dict(merged_state_dict(model))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(base(images()), model(images()), rtol=1e-5, atol=1e-5)


def test_adapters_do_not_shift_pct_to_freeze_of_the_base_weights() -> None:
    plain, adapted = tiny_vit(), tiny_vit()
    apply_lora(adapted, rank=2, alpha=2.0, targets="linear")
    for pct in (0.0, 0.5, 0.8):
        with_adapters = trainable_mask(adapted, pct)
        assert {n: t for n, t in with_adapters.items() if not is_lora_param(n)} == trainable_mask(plain, pct)
        assert all(t for n, t in with_adapters.items() if is_lora_param(n))


def test_targets() -> None:
    linear = lora_targets(tiny_vit(), "linear")
    assert "blocks.0.mlp.fc1" in linear and "blocks.1.attn.proj" in linear and "head" not in linear
    timm = import_timm()
    convnet = timm.create_model("resnet10t", pretrained=False, num_classes=3)
    with pytest.raises(ValueError, match="no fused attention qkv layer for LoRA; use a ViT-style model or lora_t"):
        lora_targets(convnet, "qkv")
    with pytest.raises(ValueError, match="lora_targets='q' is not allowed"):
        lora_targets(tiny_vit(), "q")


# --------------------------------------------------------------------------------------------
# the runner
# --------------------------------------------------------------------------------------------


def lora_space(tmp_path: Path, rank: int = 4, alpha: Any = 8, **fixed: Any) -> Path:
    """A search space of one tiny ViT whose hyperparameters are FAST_HP's values (or ``fixed``) plus the LoRA ones."""
    hps: dict[str, Any] = {k: {"values": [v]} for k, v in {**FAST_HP, **fixed}.items()}
    hps["opt_betas"]["active_if"] = {"opt": ["adamw"]}
    hps["lora_rank"] = {"values": [rank]}
    if alpha is not None:
        hps["lora_alpha"] = {"values": [alpha], "active_if": {"lora_rank": [rank]}}
    hps["lora_targets"] = {"values": ["qkv"], "active_if": {"lora_rank": [rank]}}
    model = {"name": TINY_VIT, "alias": "vit_tiny", "params_m": 5.7}
    space = {"name": "lora-test", "models": [model], "hyperparameters": hps}
    path = tmp_path / "lora-space.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def test_a_lora_run_records_its_hyperparameters_and_trains_only_adapters_and_head(tiny_dataset, store, tmp_path):
    space = lora_space(tmp_path)
    cfg = make_cfg(
        tiny_dataset, store, tmp_path, model=TINY_VIT, search_space=str(space), hp={}, epochs=1, keep_checkpoint=True
    )
    result = finetune(cfg)
    assert result.status == "ok" and result.wrote_store
    run = StoreReader(store).scan_runs().collect().row(0, named=True)
    extra = json.loads(run["extra_hps"])
    assert (extra["lora_rank"], extra["lora_alpha"], extra["lora_targets"]) == (4, 8, "qkv")
    assert run["pct_to_freeze"] == 0.0  # pct_to_freeze 0: the base weights train too, adapters on top
    state = torch.load(run_dir(tmp_path / "ckpt", result.run_id) / FILENAME, map_location="cpu", weights_only=False)
    trained = state["model"]
    assert sum(is_lora_param(k) for k in trained) == 24  # A and B on the 12 blocks' qkv
    assert all(trained[k].abs().sum() > 0 for k in trained if k.endswith("lora_B"))  # B left zero: it trained


def test_a_frozen_backbone_lora_run_changes_nothing_but_adapters_and_head(tiny_dataset, store, tmp_path):
    space = lora_space(tmp_path, pct_to_freeze=1.0)
    cfg = make_cfg(
        tiny_dataset, store, tmp_path, model=TINY_VIT, search_space=str(space), hp={"pct_to_freeze": 1.0},
        epochs=1, keep_checkpoint=True,
    )  # fmt: skip
    result = finetune(cfg)
    assert result.status == "ok"
    trained = torch.load(run_dir(tmp_path / "ckpt", result.run_id) / FILENAME, weights_only=False)["model"]
    torch.manual_seed(cfg.seed)  # what the runner draws first: the model, then the adapters
    start = build_model(TINY_VIT, 4, weights=WeightsSource("random"), img_size=32).model.state_dict()
    moved = sorted(k for k in start if not torch.equal(start[k], trained[k]))
    assert moved == ["head.bias", "head.weight"]


def test_lora_rank_without_alpha_is_refused_before_training(tiny_dataset, store, tmp_path):
    cfg = make_cfg(tiny_dataset, store, tmp_path, model=TINY_VIT, search_space=str(lora_space(tmp_path, alpha=None)))
    with pytest.raises(HyperparameterError, match="needs lora_rank > 0 and lora_alpha > 0"):
        finetune(cfg)
    assert not list(StoreReader(store).scan_runs().collect().iter_rows())
