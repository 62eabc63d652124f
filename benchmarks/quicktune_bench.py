"""Overhead of DyHPO / Quick-Tune BO steps and meta-training time per fold, on the synthetic paper profile.

    .venv/bin/python -m benchmarks.quicktune_bench [--store /tmp/paper] [--steps 7] [--reference-meta]

1. Meta-training time per fold (fold 0 of the paper's 5-fold split of each version; cached fits are
   not reused: every fold is trained here). Subsampling: our default runs 2,000 iterations of one
   32-pair batch each with 20 validation episodes every 50 iterations; ``--reference-meta`` also
   times the reference's 10,000 iterations with 50 episodes every 20 (micro only).
2. Median overhead of one BO step (ask = refit + predict + acquisition, plus tell) with 300 candidates
   and 500 observed epochs (100 pipelines x 5 epochs of micro curves), in the refine phase and for a
   reset fit, for our default refit schedule and the reference's, as a ratio.

The store is generated first if missing (``python -m metagen.store synth STORE --profile paper --seed 0``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmark.methods.dyhpo import DyHPO
from benchmark.methods.graybox_bo import SCHEDULES, GrayBoxBO
from benchmark.methods.quicktune import make_quicktune
from benchmark.protocol import EpochResult, SearchView
from surrogates.data import TaskData, load_store_tasks
from surrogates.folds import paper_splits
from surrogates.metatrain import REFERENCE_META, MetaModel, MetaTrainConfig, meta_train


def ensure_store(path: Path) -> None:
    """Generate the synthetic paper-profile store if it is not there."""
    if not (path / "store.json").is_file():
        print(f"generating the synthetic paper profile in {path} ...", flush=True)
        subprocess.run([sys.executable, "-m", "metagen.store", "synth", str(path), "--profile", "paper", "--seed", "0"],
                       check=True)  # fmt: skip


def time_meta_training(store: Path, version: str, config: MetaTrainConfig) -> tuple[float, MetaModel, dict]:
    """Seconds to meta-train fold 0 of ``version`` (data loading excluded), the model and the tasks."""
    tasks = {t.name: t for t in load_store_tasks(str(store), version)}
    split = paper_splits(list(tasks))[0]
    t0 = time.perf_counter()
    model = meta_train([tasks[d] for d in split.train], [tasks[d] for d in split.valid], config, progress=True)
    return time.perf_counter() - t0, model, tasks


def bench_view(tasks: dict[str, TaskData], n: int = 300) -> tuple[SearchView, np.ndarray]:
    """A 300-candidate view from the pipelines (and curves) of several datasets of one version."""
    names = sorted(tasks)
    feats: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    models: list[str] = []
    for d in names:
        t = tasks[d]
        feats.append(t.features)
        vals.append(t.values)
        models.extend(t.models)
        if sum(len(f) for f in feats) >= n:
            break
    x, values = np.concatenate(feats)[:n], np.concatenate(vals)[:n]
    t0 = tasks[names[0]]
    view = SearchView(
        name="bench", version="micro", pipeline_ids=tuple(f"p{i}" for i in range(n)), models=tuple(models[:n]),
        features=x, feature_names=t0.feature_names, max_epochs=values.shape[1], meta_features=dict(t0.meta),
    )  # fmt: skip
    return view, values


def observe(opt: GrayBoxBO, values: np.ndarray, n_pipes: int = 100, epochs: int = 5) -> None:
    """Feeds ``n_pipes x epochs`` observed epochs (the fits they would trigger are skipped)."""
    for i in range(n_pipes):
        e = np.arange(1, epochs + 1)
        results = [EpochResult(i, int(k), float(np.nan_to_num(values[i, k - 1], nan=0.5)), 1.0, False) for k in e]
        opt.tell(opt.issue(i, epochs), results)


def step_overheads(opt: GrayBoxBO, values: np.ndarray, steps: int, reset: bool) -> list[float]:
    """Seconds of ``steps`` BO steps (ask + tell of one new epoch) in the refine phase or as reset fits."""
    out = []
    for _ in range(steps):
        opt.fits = opt.schedule.initial_steps  # past the initial phase
        opt.restart = reset
        t0 = time.perf_counter()
        ask = opt.ask()
        assert ask is not None
        v = float(np.nan_to_num(values[ask.pipeline, ask.epoch - 1], nan=0.5))
        opt.tell(ask, [EpochResult(ask.pipeline, ask.epoch, v, 1.0, False)])
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="/tmp/paper")
    parser.add_argument("--steps", type=int, default=7, help="measured BO steps per setting (median reported)")
    parser.add_argument("--reset-steps", type=int, default=2, help="measured reset fits per setting")
    parser.add_argument("--versions", default="micro,mini,extended")
    parser.add_argument("--reference-meta", action="store_true", help="also time the reference meta-training (micro)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: least hurt by other load)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    store = Path(args.store)
    ensure_store(store)
    print(f"torch threads: {torch.get_num_threads()}")

    print("\n== meta-training time per fold (fold 0, synthetic paper profile) ==")
    models: dict[str, tuple[MetaModel, dict]] = {}
    configs = [("default", MetaTrainConfig())] + ([("reference", REFERENCE_META)] if args.reference_meta else [])
    for version in args.versions.split(","):
        for label, config in configs:
            if label == "reference" and version != "micro":
                continue
            secs, model, tasks = time_meta_training(store, version, config)
            models.setdefault(version, (model, tasks))
            print(f"{version:<9} {label:<9} {config.iterations:>6} it  {secs:7.1f} s  "
                  f"(best val MSE {model.info['best_val_mse_perf']:.4f} at it {model.info['best_iteration_perf']})",
                  flush=True)  # fmt: skip

    model, tasks = models.get("micro") or next(iter(models.values()))
    view, values = bench_view(tasks)
    print(f"\n== BO step overhead: {view.n} candidates, 500 observed epochs, median of {args.steps} steps ==")
    print(f"{'method':<10}{'phase':<9}{'default (s)':>12}{'reference (s)':>15}{'ratio':>8}")
    for name in ("dyhpo", "quicktune"):
        for phase, reset, n in (("refine", False, args.steps), ("reset", True, args.reset_steps)):
            med = {}
            for sched in ("default", "reference"):
                if name == "dyhpo":
                    opt: GrayBoxBO = DyHPO(view, 0, schedule=sched)
                else:
                    opt = make_quicktune(view, 0, None, meta_model=model, schedule=sched)
                observe(opt, values)
                med[sched] = statistics.median(step_overheads(opt, values, n, reset))
            print(f"{name:<10}{phase:<9}{med['default']:>12.3f}{med['reference']:>15.3f}"
                  f"{med['reference'] / med['default']:>7.1f}x", flush=True)  # fmt: skip
    d, r = SCHEDULES["default"], SCHEDULES["reference"]
    print(f"\nschedules: default {d}\n           reference {r}")


if __name__ == "__main__":
    main()
