"""Store benchmark: dense-array loading from our Parquet store vs. the original Quick-Tune JSON layout.

On the synthetic ``paper`` profile (743,644 epochs) it times, per version, loading every curve
(validation top-1 and per-epoch cost) into dense ``(n_runs, max_epochs)`` arrays, from our store
and from the original aggregated JSON layout (``<version>/<curve>.json`` + ``args.json``, which
this script writes from the same data), and compares sizes on disk. Both are read warm (files in
the page cache); the best of ``--repeat`` runs is reported.

    python -m benchmarks.store_bench [--store DIR] [--workdir DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from metagen.store import StoreReader
from metagen.store.layout import StoreMetadata, read_metadata
from metagen.store.synth import synthesize

QT_CURVES = (
    "train_loss", "train_head_grad_norm", "train_backbone_grad_norm", "train_time",
    "eval_loss", "eval_top1", "eval_top5", "eval_time", "lr",
)  # fmt: skip
OURS_TO_QT = {"head_grad_norm": "train_head_grad_norm", "backbone_grad_norm": "train_backbone_grad_norm"}


def write_quicktune_json(store: Path, out: Path) -> None:
    """Write the store's curves and args in the original Quick-Tune aggregated JSON layout (accuracy in %)."""
    reader = StoreReader(store)
    for version in reader.versions():
        vdir = out / version
        vdir.mkdir(parents=True, exist_ok=True)
        runs = reader.scan_runs(version).collect()
        curves = reader.scan_curves(version).collect().rename(OURS_TO_QT)
        grouped = (
            curves.join(runs.select("run_id", "dataset"), on="run_id")
            .sort("run_id", "epoch")
            .group_by("dataset", "run_id", maintain_order=True)
            .agg(pl.col(c) for c in QT_CURVES)
        )
        for name in QT_CURVES:
            scale = 100.0 if name in ("eval_top1", "eval_top5") else 1.0
            data: dict[str, dict[str, list[float | None]]] = {}
            for row in grouped.select("dataset", "run_id", name).iter_rows():
                values = [None if v is None else float(v) * scale for v in row[2]]
                data.setdefault(f"mtlbm/{version}/{row[0]}", {})[row[1]] = values
            (vdir / f"{name}.json").write_text(json.dumps(data))
        args = {r["run_id"]: {k: v for k, v in r.items() if k != "created_at"} for r in runs.iter_rows(named=True)}
        (vdir / "args.json").write_text(json.dumps(args))


def load_quicktune_json(root: Path, version: str, max_epochs: int = 50) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Dense accuracy (fraction) and cost arrays per dataset from the JSON layout, as its loader does."""
    vdir = root / version
    top1 = json.loads((vdir / "eval_top1.json").read_text())
    train_time = json.loads((vdir / "train_time.json").read_text())
    eval_time = json.loads((vdir / "eval_time.json").read_text())
    out = {}
    for dataset, curves in top1.items():
        n = len(curves)
        acc, cost = np.full((n, max_epochs), np.nan), np.full((n, max_epochs), np.nan)
        for i, (run_id, values) in enumerate(curves.items()):
            k = len(values)
            acc[i, :k] = np.array(values, dtype=float) / 100.0
            cost[i, :k] = np.array(train_time[dataset][run_id], dtype=float) + np.array(eval_time[dataset][run_id])
        out[dataset] = (acc, cost)
    return out


def load_store(root: Path, version: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The same arrays from our store (a fresh reader, so nothing is cached in Python)."""
    return {d: (a.values, a.cost) for d, a in StoreReader(root).version_arrays(version).items()}


def best_time(fn: Callable[[], object], repeat: int) -> float:
    """Best wall-clock seconds of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def du(path: Path) -> int:
    """Bytes of all files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, help="an existing paper-profile store (default: synthesize one)")
    parser.add_argument("--workdir", type=Path, help="where to write the stores (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="store_bench_"))
    store = args.store or work / "store"
    if not (store / "store.json").exists():
        t = time.perf_counter()
        synthesize(store, "paper", seed=0)
        print(f"synthesized paper profile in {time.perf_counter() - t:.1f} s -> {store}")
    meta: StoreMetadata = read_metadata(store)
    qt = work / "quicktune_json"
    if not qt.exists():
        write_quicktune_json(store, qt)
    reader = StoreReader(store)
    sizes = reader.datasets()
    print(f"store: {meta.name} (synthetic={meta.synthetic}); {sizes['n_runs'].sum()} runs, "
          f"{sizes['n_epochs'].sum()} epochs")  # fmt: skip
    print(f"{'version':<10}{'epochs':>9}{'ours (s)':>10}{'json (s)':>10}{'speed-up':>10}")
    total_ours = total_json = 0.0
    for version in reader.versions():
        ours_arrays, json_arrays = load_store(store, version), load_quicktune_json(qt, version)
        for d, (acc, cost) in ours_arrays.items():  # same numbers from both (float32 storage)
            ja, jc = json_arrays[f"mtlbm/{version}/{d}"]
            assert np.allclose(acc, ja, equal_nan=True, atol=1e-6) and np.allclose(cost, jc, equal_nan=True, rtol=1e-6)
        ours = best_time(functools.partial(load_store, store, version), args.repeat)
        js = best_time(functools.partial(load_quicktune_json, qt, version), args.repeat)
        total_ours, total_json = total_ours + ours, total_json + js
        n_epochs = int(sizes.filter(pl.col("dataset_version") == version)["n_epochs"].sum())
        print(f"{version:<10}{n_epochs:>9}{ours:>10.3f}{js:>10.3f}{js / ours:>9.1f}x")
    print(f"{'all':<10}{int(sizes['n_epochs'].sum()):>9}{total_ours:>10.3f}{total_json:>10.3f}"
          f"{total_json / total_ours:>9.1f}x")  # fmt: skip
    s_ours, s_json = du(store), du(qt)
    print(f"size on disk: ours {s_ours / 2**20:.1f} MiB, Quick-Tune JSON {s_json / 2**20:.1f} MiB, "
          f"{s_json / s_ours:.1f}x smaller")  # fmt: skip
    print(f"target: each version < 1 s (ours, all three together {total_ours:.3f} s); >= 10x faster; >= 5x smaller")


if __name__ == "__main__":
    main()
