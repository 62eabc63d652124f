"""Fixtures of the finetuning tests: a tiny Meta-Album dataset, a store, a fast config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from metagen.datasets import make_dataset
from metagen.finetune import FinetuneConfig

FAST_MODEL = "edgenext_xx_small"
BN_MODEL = "mobilevit_xxs"
FAST_HP = {
    "batch_size": 8,
    "lr": 0.001,
    "opt": "adamw",
    "opt_betas": "0.9 0.999",
    "sched": "cosine",
    "warmup_epochs": 0,
    "warmup_lr": 0.0,
    "weight_decay": 0.0001,
    "pct_to_freeze": 0.0,
    "layer_decay": None,
    "linear_probing": False,
    "stoch_norm": False,
    "sp_reg": 0.0,
    "delta_reg": 0.0,
    "bss_reg": 0.0,
    "cotuning_reg": 0.0,
    "mixup": 0.0,
    "cutmix": 0.0,
    "mixup_prob": 0.0,
    "drop": 0.0,
    "smoothing": 0.0,
    "clip_grad": None,
    "data_augmentation": None,
    "amp": False,
}


@pytest.fixture(autouse=True)
def _few_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 classes x 10 images of 32 px (train 24, val 8, test 8)."""
    out = tmp_path_factory.mktemp("data") / "tiny"
    return make_dataset("shapes", out, n_classes=4, per_class=10, resolution=32, seed=0)


def make_cfg(dataset: Path, store: Path, tmp_path: Path, **overrides) -> FinetuneConfig:
    """A fast CPU config: random init, 32 px, deterministic, 1 thread."""
    hp = dict(FAST_HP)
    hp.update(overrides.pop("hp", {}))
    kwargs: dict[str, Any] = {
        "dataset": str(dataset),
        "store": str(store),
        "model": FAST_MODEL,
        "epochs": 2,
        "seed": 0,
        "hp": hp,
        "pretrained": "none",
        "img_size": 32,
        "device": "cpu",
        "deterministic": True,
        "num_threads": 1,
        "checkpoint_dir": str(tmp_path / "ckpt"),
        "cap_s": None,
    }
    kwargs.update(overrides)
    return FinetuneConfig(**kwargs)
