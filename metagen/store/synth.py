"""Synthetic stores for scale and performance work only: plausible curves, never measured.

The ``paper`` profile matches the sizes of the Quick-Tune meta-dataset exactly (datasets, curves
and epochs per version); ``tiny`` is for tests and demos. Curves are saturating exponentials whose
final accuracy depends on the dataset, the model's ImageNet accuracy and the distance of the
learning rate from a per-optimizer optimum; per-epoch cost grows with model size, dataset size and
small batches; large learning rates with Adam-type optimizers diverge more often; runs stop at the
version's wall-clock cap. The store's metadata says ``synthetic: true`` and every run's ``source``
is ``synthetic``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from metagen.search_space import SearchSpace
from metagen.store.layout import StoreMetadata, create_store
from metagen.store.records import split_hyperparameters
from metagen.store.schema import RUNS_SCHEMA, drop_inactive, pipeline_id, polars_schema
from metagen.store.writer import refresh_array_views, write_partition

META_ALBUM_CODES = (
    "BCT", "BRD", "CRS", "FLW", "MD_MIX", "PLK", "PLT_VIL", "RESISC", "SPT", "TEX",
    "ACT_40", "APL", "DOG", "INS_2", "MD_5_BIS", "MED_LF", "PLT_NET", "PNU", "RSICB", "TEX_DTD",
    "ACT_410", "AWA", "BTS", "FNG", "INS", "MD_6", "PLT_DOC", "PRT", "RSD", "TEX_ALOT",
)  # fmt: skip


@dataclass(frozen=True)
class VersionProfile:
    """Exact sizes of one synthetic version."""

    version: str
    n_datasets: int
    n_curves: int
    n_epochs: int
    cap_s: float
    max_epochs: int = 50


PROFILES: dict[str, tuple[VersionProfile, ...]] = {
    # The paper's meta-dataset (reference §3.1): 86 datasets, 20,108 curves, 743,644 epochs.
    "paper": (
        VersionProfile("micro", 30, 8712, 371538, 3600.0),
        VersionProfile("mini", 30, 6731, 266384, 14400.0),
        VersionProfile("extended", 26, 4665, 105722, 57600.0),
    ),
    "tiny": (
        VersionProfile("micro", 3, 36, 1200, 3600.0),
        VersionProfile("mini", 2, 20, 600, 14400.0),
    ),
}

_CURVE_NAMES = ("train_loss", "eval_loss", "eval_top1", "eval_top5", "train_time", "eval_time", "lr")


def synthesize(dest: str | Path, profile: str = "tiny", seed: int = 0) -> StoreMetadata:
    """Write a synthetic store of a profile into ``dest``; same seed, same store."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    meta = StoreMetadata(
        name=f"synthetic-{profile}-seed{seed}",
        synthetic=True,
        description=(
            f"SYNTHETIC store (profile '{profile}', seed {seed}) for scale and performance work only: "
            "parametric curves, not measured. Never report results on it as findings."
        ),
        deviations=("Every number in this store is generated, not measured (see metagen/store/synth.py).",),
        generator={"generator": "metagen.store.synth", "profile": profile, "seed": seed,
                   "versions": [asdict(p) for p in PROFILES[profile]]},
    )  # fmt: skip
    create_store(dest, meta)
    rng = np.random.default_rng(seed)
    space = SearchSpace.load("v1")
    for vp in PROFILES[profile]:
        _write_version(dest, vp, space, rng)
    refresh_array_views(dest)
    return meta


def _write_version(dest: str | Path, vp: VersionProfile, space: SearchSpace, rng: np.random.Generator) -> None:
    codes = META_ALBUM_CODES[: vp.n_datasets] if vp.n_datasets <= 30 else [f"D{i:03d}" for i in range(vp.n_datasets)]
    per = np.full(vp.n_datasets, vp.n_curves // vp.n_datasets)
    per[rng.permutation(vp.n_datasets)[: vp.n_curves % vp.n_datasets]] += 1
    tasks = [_make_task(vp, code, int(n), space, rng) for code, n in zip(codes, per, strict=True)]
    _fit_lengths(tasks, vp, rng)
    for task in tasks:
        runs, curves = _frames(task, vp)
        write_partition(dest, runs, curves)


def _dataset_meta(vp: VersionProfile, rng: np.random.Generator) -> dict[str, int]:
    if vp.version == "micro":
        classes, per_class = 20, 40
    elif vp.version == "mini":
        classes, per_class = int(rng.integers(19, 706)), 40
    else:
        classes, per_class = int(rng.integers(19, 706)), int(rng.integers(40, 1000))
    return {"train_size": int(classes * per_class * 0.6), "num_classes": classes, "resolution": 128, "channels": 3}


def _make_task(vp: VersionProfile, code: str, n: int, space: SearchSpace, rng: np.random.Generator) -> dict[str, Any]:
    """Pipelines, hidden curve parameters and natural lengths of one dataset."""
    meta = _dataset_meta(vp, rng)
    ceiling = rng.uniform(0.45, 0.98)  # best reachable accuracy on this dataset
    pipelines = [space.sample(rng) for _ in range(n)]
    info = {m.name: m for m in space.models}
    top1 = np.array([info[p["model"]].imagenet_top1 for p in pipelines])
    params = np.array([info[p["model"]].params_m for p in pipelines])
    lr = np.array([p["lr"] for p in pipelines])
    adam = np.array([p["opt"] in ("adam", "adamw", "adamp") for p in pipelines])
    best_lr = np.where(adam, 3e-4, 5e-3)
    lr_penalty = 0.12 * np.abs(np.log10(lr / best_lr)) ** 1.5
    freeze = np.array([p["pct_to_freeze"] for p in pipelines])
    quality = 1.0 - 0.5 * (90.7 - top1) / 17.0 - lr_penalty - 0.1 * freeze**2 + rng.normal(0, 0.05, n)
    chance = 1.0 / meta["num_classes"]
    final = np.clip(chance + (ceiling - chance) * quality, chance, 0.999)
    tau = np.clip(2.0 + 8.0 * (1e-3 / lr) ** 0.3 + rng.gamma(2.0, 1.0, n), 1.0, 40.0)
    batch = np.array([p["batch_size"] for p in pipelines])
    cost = (0.02 + meta["train_size"] / 4000.0) * params**0.6 * (1.0 + 8.0 / batch) * rng.lognormal(0, 0.2, n)
    p_div = 0.02 + 0.3 * (adam & (lr >= 5e-3)) + 0.1 * (lr >= 1e-2)
    diverge_at = np.where(rng.random(n) < p_div, rng.integers(1, vp.max_epochs + 1, n), 0)
    return {
        "code": code, "meta": meta, "pipelines": pipelines, "final": final, "chance": chance, "tau": tau,
        "cost": cost, "diverge_at": diverge_at, "lr": lr, "noise": rng.normal(0, 0.012, (n, vp.max_epochs)),
    }  # fmt: skip


def _lengths(task: dict[str, Any], vp: VersionProfile, scale: float) -> np.ndarray:
    by_cap = np.floor(vp.cap_s / (task["cost"] * scale)).astype(int)
    length = np.clip(by_cap, 1, vp.max_epochs)
    div = task["diverge_at"]
    return np.where(div > 0, np.minimum(length, div), length)


def _fit_lengths(tasks: Sequence[dict[str, Any]], vp: VersionProfile, rng: np.random.Generator) -> None:
    """Scale all costs so the version's total epochs match the profile exactly."""
    lo, hi = 1e-6, 1e6
    for _ in range(200):
        mid = np.sqrt(lo * hi)
        total = sum(int(_lengths(t, vp, mid).sum()) for t in tasks)
        lo, hi = (mid, hi) if total > vp.n_epochs else (lo, mid)
    scale = hi
    for t in tasks:
        t["cost"] = t["cost"] * scale
        t["length"] = _lengths(t, vp, 1.0)
        t["cost"] = np.minimum(t["cost"], vp.cap_s / t["length"])  # no run outlives the cap
    diff = vp.n_epochs - sum(int(t["length"].sum()) for t in tasks)
    step = 1 if diff > 0 else -1
    while diff:
        t = tasks[int(rng.integers(len(tasks)))]
        movable = (t["diverge_at"] == 0) & ((t["length"] < vp.max_epochs) if step > 0 else (t["length"] > 1))
        idx = np.flatnonzero(movable)
        if idx.size == 0:
            continue
        i = int(rng.choice(idx))
        t["length"][i] += step
        t["cost"][i] = min(t["cost"][i], vp.cap_s / t["length"][i])
        diff -= step


def _frames(task: dict[str, Any], vp: VersionProfile) -> tuple[pl.DataFrame, pl.DataFrame]:
    n, width = len(task["pipelines"]), vp.max_epochs
    epochs = np.arange(1, width + 1)
    start = task["chance"]
    acc = task["final"][:, None] - (task["final"][:, None] - start) * np.exp(-epochs[None, :] / task["tau"][:, None])
    acc = np.clip(acc + task["noise"], 0.0, 1.0)
    top5 = np.clip(acc + (1 - acc) * 0.6, 0.0, 1.0)
    loss = -np.log(np.clip(acc, 1e-3, 1.0)) + 0.05
    train_time = np.broadcast_to(task["cost"][:, None] * 0.8, (n, width))
    lr = np.broadcast_to(task["lr"][:, None], (n, width))
    length = task["length"]
    diverged = (task["diverge_at"] > 0) & (task["diverge_at"] == length)
    keep = epochs[None, :] <= length[:, None]
    nan_at = diverged[:, None] & (epochs[None, :] == length[:, None])
    acc, top5, loss = (np.where(nan_at, np.nan, a) for a in (acc, top5, loss))
    rows, cols = np.nonzero(keep)
    run_ids = [f"syn-{vp.version}-{task['code']}-{i:05d}" for i in range(n)]
    curves = pl.DataFrame(
        {
            "run_id": np.array(run_ids)[rows],
            "epoch": (cols + 1).astype(np.int32),
            "train_loss": loss[rows, cols].astype(np.float32),
            "eval_loss": (loss[rows, cols] * 1.1).astype(np.float32),
            "eval_top1": acc[rows, cols].astype(np.float32),
            "eval_top5": top5[rows, cols].astype(np.float32),
            "train_time": train_time[rows, cols].astype(np.float32),
            "eval_time": (train_time[rows, cols] * 0.25).astype(np.float32),
            "lr": lr[rows, cols].astype(np.float32),
        }
    )
    status = np.where(diverged, "diverged", np.where(length >= width, "ok", "timeout"))
    runs = [_run_row(task, vp, i, run_ids[i], str(status[i]), int(length[i])) for i in range(n)]
    return pl.DataFrame(runs, schema=polars_schema(RUNS_SCHEMA)), curves


def _run_row(task: dict[str, Any], vp: VersionProfile, i: int, run_id: str, status: str, length: int) -> dict[str, Any]:
    p = drop_inactive(task["pipelines"][i])
    model = p.pop("model")
    known, extra = split_hyperparameters(p)
    return {
        "run_id": run_id, "pipeline_id": pipeline_id(model, p), "dataset": task["code"], "dataset_version": vp.version,
        "model": model, **known, "extra_hps": json.dumps(extra, sort_keys=True), "seed": 0,
        "max_epochs": vp.max_epochs, "n_epochs": length, "status": status,
        "status_message": "NaN training loss" if status == "diverged" else None,
        "time_cap_s": vp.cap_s, **task["meta"], "source": "synthetic", "pretrained_source": None,
        "hardware": "synthetic", "package_versions": None, "created_at": None,
    }  # fmt: skip
