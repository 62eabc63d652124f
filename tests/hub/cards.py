"""A tiny hub card built in-process: random timm weights with a small source head, and its card."""

from __future__ import annotations

from pathlib import Path

import torch

from metagen._timm import import_timm
from metagen.finetune.data import seeded_global_rngs
from metagen.hub.card import WEIGHTS_FILE, HubCard, sha256_file, write_card


def write_tiny_card(hub_dir: Path, arch: str = "edgenext_xx_small", num_classes: int = 3, seed: int = 0) -> HubCard:
    """``hub_dir/<arch>.tiny32/`` with random weights of ``arch`` (``num_classes`` source classes) and a card."""
    from safetensors.torch import save_file

    timm = import_timm()
    with seeded_global_rngs(seed):
        model = timm.create_model(arch, pretrained=False, num_classes=num_classes)
    card_id = f"{arch}.tiny32"
    folder = Path(hub_dir) / card_id
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / WEIGHTS_FILE))
    card = HubCard(
        card_id=card_id,
        architecture=arch,
        num_classes=num_classes,
        class_names=tuple(f"c{i}" for i in range(num_classes)),
        source={
            "name": "tiny",
            "description": "random weights (tests)",
            "license": "generated",
            "split": "train",
            "images_available": 8,
            "images_per_epoch": 8,
            "resolution": 32,
            "input": "32x32 px, RGB",
        },
        evaluation={"split": "eval", "images": 4, "top1": 0.25},
        recipe={
            "optimizer": "AdamW",
            "lr": 0.001,
            "weight_decay": 0.0,
            "betas": [0.9, 0.999],
            "schedule": "none",
            "batch_size": 4,
            "label_smoothing": 0.0,
            "augmentation": "none",
            "mean": [0.5] * 3,
            "std": [0.5] * 3,
            "seed": seed,
        },
        epochs=1,
        history=({"epoch": 1, "train_loss": 1.0, "top1": 0.25, "cpu_s": 0.1, "wall_s": 0.1},),
        cost={"cpu_s": 0.1, "wall_s": 0.1, "threads": 1, "hardware": "test"},
        packages={"torch": torch.__version__},
        weights_sha256=sha256_file(folder / WEIGHTS_FILE),
        weights_bytes=(folder / WEIGHTS_FILE).stat().st_size,
    )
    write_card(folder, card)
    return card
