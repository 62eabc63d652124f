"""Per-epoch time of metagen's finetuning runner vs a minimal plain PyTorch loop (CPU).

Same model (random init), same images, same batch size, same timm train/eval transforms and
AdamW; the plain loop has no per-sample seeding, no gradient norms, no top-5, no checkpoint and no
store write. The runner's epoch time is train + eval (from its curve) + the checkpoint write
(timed here). Epoch 1 is warm-up and not counted; each figure is the minimum over ``--repeats``
runs, interleaved, of the mean over the remaining epochs (the machine may be shared).

    python -m benchmarks.finetune_bench [--models dla46x_c mobilevit_xxs edgenext_xx_small]
        [--img-size 64] [--epochs 4] [--batch-size 32] [--threads 2] [--repeats 2]

Target: overhead (runner / plain - 1) under 10 %.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import polars as pl
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from metagen._timm import import_timm
from metagen.datasets import load_dataset, make_dataset
from metagen.finetune import FinetuneConfig, finetune
from metagen.finetune import checkpoint as ckpt
from metagen.finetune import runner as runner_module
from metagen.finetune.data import eval_transform, train_transform
from metagen.finetune.models import WeightsSource, build_model
from metagen.search_space import SearchSpace
from metagen.store import StoreMetadata, StoreReader, create_store

HP = {
    "pct_to_freeze": 0.0, "layer_decay": None, "linear_probing": False, "stoch_norm": False, "sp_reg": 0.0,
    "delta_reg": 0.0, "bss_reg": 0.0, "cotuning_reg": 0.0, "mixup": 0.0, "mixup_prob": 0.0, "cutmix": 0.0,
    "drop": 0.0, "smoothing": 0.0, "clip_grad": None, "data_augmentation": None, "opt": "adamw",
    "opt_betas": "0.9 0.999", "lr": 0.001, "warmup_lr": 0.0, "warmup_epochs": 0, "weight_decay": 0.0001,
    "amp": False, "sched": None,
}  # fmt: skip


class PlainImages(Dataset):
    """(image, label) of a split with one transform: the minimal dataset."""

    def __init__(self, ds, indices, transform):
        self.ds, self.indices, self.transform = ds, indices, transform

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, k):
        i = int(self.indices[k])
        return self.transform(self.ds.open_image(i)), int(self.ds.labels[i])


def plain_epochs(model_name: str, data: Path, img_size: int, epochs: int, batch_size: int) -> list[float]:
    """Seconds per epoch (train + eval) of a plain loop."""
    timm = import_timm()
    ds = load_dataset(data)
    split = ds.split()
    torch.manual_seed(0)
    built = build_model(model_name, len(ds.classes), weights=WeightsSource("random"), img_size=img_size)
    model = built.model
    train = DataLoader(PlainImages(ds, split.train, train_transform(built.data_config, HP)), batch_size=batch_size,
                       shuffle=True, drop_last=True)  # fmt: skip
    val = DataLoader(PlainImages(ds, split.val, eval_transform(built.data_config)), batch_size=max(batch_size, 16))
    opt = timm.optim.create_optimizer_v2(model, opt="adamw", lr=0.001, weight_decay=0.0001)
    loss_fn = torch.nn.CrossEntropyLoss()
    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        model.train()
        for x, y in train:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in val:
                correct += int((model(x).argmax(1) == y).sum())
        times.append(time.perf_counter() - t)
    return times


def runner_epochs(model_name: str, data: Path, img_size: int, epochs: int, batch_size: int, work: Path) -> list[float]:
    """Seconds per epoch (train + eval + checkpoint write) of ``finetune``."""
    store = work / f"store-{time.monotonic_ns()}"
    create_store(store, StoreMetadata(name="bench", description="finetune bench"))
    saves: list[float] = []
    original = ckpt.save

    def timed_save(path_dir, state):
        t = time.perf_counter()
        out = original(path_dir, state)
        saves.append(time.perf_counter() - t)
        return out

    runner_module.ckpt.save = timed_save
    try:
        cfg = FinetuneConfig(
            dataset=str(data),
            store=str(store),
            model=model_name,
            epochs=epochs,
            seed=0,
            hp={**HP, "batch_size": batch_size},
            pretrained="none",
            img_size=img_size,
            device="cpu",
            cap_s=None,
            checkpoint_dir=str(work / "ck"),
            keep_checkpoint=False,
        )
        result = finetune(cfg)
    finally:
        runner_module.ckpt.save = original
    if result.status != "ok":
        raise RuntimeError(f"{model_name}: runner status {result.status}: {result.message}")
    curve = StoreReader(store).scan_curves().sort("epoch").collect()
    return list(curve["train_time"].to_numpy() + curve["eval_time"].to_numpy() + np.array(saves))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["dla46x_c", "mobilevit_xxs", "edgenext_xx_small"])
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    space = SearchSpace.load("v1")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = make_dataset("shapes", work / "bench-data", n_classes=args.classes, per_class=args.per_class,
                            resolution=args.img_size, seed=0)  # fmt: skip
        n_train = len(load_dataset(data).split().train)
        print(f"CPU, {args.threads} threads; {n_train} train images of {args.img_size} px, batch {args.batch_size} "
              f"({n_train // args.batch_size} steps/epoch); epochs {args.epochs} (first one not counted), "
              f"best of {args.repeats}")  # fmt: skip
        rows = []
        jobs = [(m, r) for r in range(args.repeats) for m in args.models]
        results: dict[str, dict[str, list[float]]] = {m: {"plain": [], "runner": []} for m in args.models}
        for model, _ in tqdm(jobs, desc="bench", unit="run"):
            name = space.model(model).name
            p = plain_epochs(name, data, args.img_size, args.epochs, args.batch_size)
            r = runner_epochs(name, data, args.img_size, args.epochs, args.batch_size, work)
            results[model]["plain"].append(float(np.mean(p[1:])))
            results[model]["runner"].append(float(np.mean(r[1:])))
        for model in args.models:
            plain, ours = min(results[model]["plain"]), min(results[model]["runner"])
            rows.append({"model": model, "plain_s_per_epoch": plain, "runner_s_per_epoch": ours,
                         "overhead_pct": 100 * (ours / plain - 1)})  # fmt: skip
        table = pl.DataFrame(rows)
        with pl.Config(float_precision=3, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
            print(table)
        print(f"mean overhead: {statistics.fmean(r['overhead_pct'] for r in rows):.1f} % (target < 10 %)")


if __name__ == "__main__":
    main()
