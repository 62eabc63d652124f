"""Live Quick-Tune vs live random search on new offline datasets at equal wall-clock budget.

For each dataset (made here, none of them in the bundled store stores/offline10-64px), seed and method, one
``python -m metagen.tune`` session (its own store and checkpoints, so no method sees another's runs) with
the bundled store as meta-data; then the best validation accuracy each session reached, per dataset and
seed, and the mean over seeds. Sessions are resumable: rerun to continue, ``--report`` only prints.

    nice -n 10 .venv/bin/python -m benchmarks.tune_live_bench [--budget 120s] [--seeds 0 1 2] [--report] [--results DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {  # name: (kind, classes, per class, seed): different kinds/classes/seeds from the bundled store
    "FSH6N": ("fashion_mnist", 6, 20, 7),
    "CHR6N": ("characters", 6, 20, 7),
    "SHP8N": ("shapes", 8, 16, 7),
}
METHODS = ("quicktune", "random_search")


def make_datasets(root: Path) -> dict[str, Path]:
    """The benchmark's datasets under ``root`` (made once; identical on every machine with the same sources)."""
    from metagen.datasets import make_dataset

    out = {}
    for name, (kind, classes, per_class, seed) in DATASETS.items():
        path = root / "data" / name
        if not (path / "labels.csv").is_file():
            make_dataset(kind, path, n_classes=classes, per_class=per_class, resolution=32, seed=seed)
        out[name] = path
    return out


def session_dir(root: Path, dataset: str, method: str, seed: int) -> Path:
    """Output folder (with its own store) of one session."""
    return root / f"{dataset}-{method}-s{seed}"


def run(root: Path, data: dict[str, Path], args: argparse.Namespace) -> None:
    """Runs every missing session, alternating the method order per seed (equal exposure to machine load)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    for seed in args.seeds:
        for name, path in data.items():
            methods = METHODS if seed % 2 == 0 else METHODS[::-1]
            for method in methods:
                out = session_dir(root, name, method, seed)
                if (out / "report.json").is_file():
                    continue
                cmd = [sys.executable, "-m", "metagen.tune", f"dataset={path}", f"store={out / 'store'}",
                       f"meta_store={ROOT / 'stores' / 'offline10-64px'}", f"hub_dir={ROOT / 'hub'}",
                       f"budget={args.budget}", f"method={method}",
                       f"workers={args.workers}", f"seed={seed}", f"candidates={args.candidates}",
                       f"epochs={args.epochs}", f"out={out}", f"cache_dir={root / 'cache'}",
                       f"meta_iterations={args.meta_iterations}", "progress_s=30"]  # fmt: skip
                t0 = time.monotonic()
                log = out.with_suffix(".log")
                out.parent.mkdir(parents=True, exist_ok=True)
                with open(log, "w") as f:
                    rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode
                print(f"{name} {method} seed {seed}: exit {rc} in {time.monotonic() - t0:.0f} s ({log})", flush=True)


def report(root: Path, args: argparse.Namespace) -> dict:
    """Best accuracy per session; per dataset the mean and std over seeds; prints a table."""
    rows = []
    for name in DATASETS:
        for method in METHODS:
            for seed in args.seeds:
                path = session_dir(root, name, method, seed) / "report.json"
                if path.is_file():
                    r = json.loads(path.read_text())
                    best = r["best"]["accuracy"] if r["best"] else float("nan")
                    rows.append({"dataset": name, "method": method, "seed": seed, "best": best,
                                 "epochs": r["epochs_trained"], "pipelines": r["pipelines_trained"],
                                 "time_used_s": r["time_used_s"]})  # fmt: skip
    print(f"{'dataset':8} {'method':14} {'seeds':>5} {'best acc mean':>13} {'std':>6} {'epochs':>7} {'pipelines':>9}")
    summary = {}
    for name in DATASETS:
        for method in METHODS:
            sel = [r for r in rows if r["dataset"] == name and r["method"] == method]
            if not sel:
                continue
            b = np.array([r["best"] for r in sel])
            summary[f"{name}/{method}"] = {"n": len(sel), "mean": float(np.mean(b)), "std": float(np.std(b)),
                                           "per_seed": {r["seed"]: r["best"] for r in sel}}  # fmt: skip
            ep, pipes = np.mean([r["epochs"] for r in sel]), np.mean([r["pipelines"] for r in sel])
            print(f"{name:8} {method:14} {len(sel):5d} {np.mean(b):13.4f} {np.std(b):6.3f} {ep:7.1f} {pipes:9.1f}")
    pairs = [(r, q) for r in rows if r["method"] == "quicktune" for q in rows
             if q["method"] == "random_search" and (q["dataset"], q["seed"]) == (r["dataset"], r["seed"])]  # fmt: skip
    if pairs:
        diff = np.array([r["best"] - q["best"] for r, q in pairs])
        diff[np.abs(diff) < 1e-6] = 0.0  # the store keeps float32 accuracies, a checkpoint float64: same value
        wins, ties = int((diff > 0).sum()), int((diff == 0).sum())
        print(f"paired (dataset, seed): {len(pairs)}; quicktune better in {wins}, tied {ties}, worse in "
              f"{len(pairs) - wins - ties}; mean difference {diff.mean():+.4f}")  # fmt: skip
    out = {"budget": args.budget, "workers": args.workers, "candidates": args.candidates, "epochs": args.epochs,
           "meta_iterations": args.meta_iterations, "sessions": rows, "summary": summary}  # fmt: skip
    (root / "results.json").write_text(json.dumps(out, indent=2) + "\n")
    if args.results is not None:
        args.results.mkdir(parents=True, exist_ok=True)
        (args.results / "results.json").write_text(json.dumps(out, indent=2) + "\n")
        (args.results / "table.md").write_text(markdown_table(out))
    return out


def markdown_table(out: dict) -> str:
    """Per dataset and method: best validation accuracy per seed and the mean (markdown)."""
    seeds = sorted({r["seed"] for r in out["sessions"]})
    head = "| dataset | method | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | epochs (mean) |\n"
    head += "|---|---|" + "---:|" * (len(seeds) + 2) + "\n"
    rows = []
    for key, v in out["summary"].items():
        name, method = key.split("/")
        eps = [r["epochs"] for r in out["sessions"] if (r["dataset"], r["method"]) == (name, method)]
        cells = [f"{v['per_seed'][s]:.4f}" if s in v["per_seed"] else "-" for s in seeds]
        rows.append(f"| {name} | {method} | " + " | ".join(cells) + f" | {v['mean']:.4f} | {np.mean(eps):.1f} |")
    return head + "\n".join(rows) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=ROOT / "out" / "tune-bench")
    ap.add_argument("--budget", default="120s")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--candidates", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--meta-iterations", type=int, default=500, help="Quick-Tune meta-training steps (cached)")
    ap.add_argument("--report", action="store_true", help="only print the table of finished sessions")
    ap.add_argument("--results", type=Path, default=None, help="also write results.json and table.md here")
    args = ap.parse_args()
    if not args.report:
        run(args.root, make_datasets(args.root), args)
    report(args.root, args)


if __name__ == "__main__":
    main()
