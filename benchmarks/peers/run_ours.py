"""Replays one of OUR registered methods on the same tasks as the peer and writes RESULTS (contract D layout).

A stopgap for the peer comparison while ``python -m benchmark.run`` is not available; it calls only the public
``benchmark.task.load_tasks``, ``benchmark.registry.make_optimizer`` and ``benchmark.replay.replay`` (overhead
``none``, one worker: the peer's setting). Run with the project's venv:

    .venv/bin/python -m benchmarks.peers.run_ours --store STORE --version micro --datasets BCT --seeds 0 1 --out DIR
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from benchmark.registry import make_optimizer
from benchmark.replay import replay
from benchmark.results import RESULT_SCHEMA
from benchmark.task import default_budget, load_tasks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--datasets", nargs="*", default=None)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--method", default="bohb", help="a registered method that needs no meta-training context")
    p.add_argument("--budget-s", type=float, default=None, help="simulated seconds (default: the version's)")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    budget = a.budget_s if a.budget_s is not None else default_budget(a.version)
    out = Path(a.out)
    for task in load_tasks(a.store, a.version, a.datasets):
        for seed in a.seeds:
            t0 = time.perf_counter()
            traj = replay(task, make_optimizer(a.method, task.view, seed), budget, overhead="none", n_workers=1)
            n = len(traj.time)
            frame = pl.DataFrame(
                {
                    "method": [a.method] * n,
                    "version": [a.version] * n,
                    "dataset": [task.dataset] * n,
                    "seed": np.full(n, seed, dtype=np.int64),
                    "step": traj.step,
                    "time": traj.time,
                    "pipeline": traj.pipeline,
                    "epoch": traj.epoch,
                    "value": traj.value,
                    "incumbent": traj.incumbent,
                    "regret": traj.regret,
                    "budget_s": np.full(n, budget),
                },
            ).select(pl.col(c).cast(t) for c, t in RESULT_SCHEMA.items())
            path = out / f"version={a.version}/method={a.method}/dataset={task.dataset}/seed={seed}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.write_parquet(path)
            print(
                f"{task.dataset:>10} seed={seed} asks={traj.n_steps:4d} epochs={n:4d} sim={traj.end_time:8.0f}s "
                f"regret={traj.final_regret:.4f} real={time.perf_counter() - t0:5.1f}s",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
