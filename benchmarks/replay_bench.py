"""Replay benchmark: every dataset of the synthetic ``paper`` store x {random_search, bohb, asha, hyperband} x 10 seeds.

Times the replay core (task loading separately) at the paper's budgets (micro 1 h, mini 4 h,
extended 16 h simulated), one simulated worker, overhead ``none``. The store is generated once and
cached (``python -m metagen.store synth DIR --profile paper --seed 0``). Target: all 3,440 replays in
under 2 minutes on a 2-core machine. Mean final regrets are printed as a sanity check only: the
store is synthetic, never report them as findings.

    python -m benchmarks.replay_bench [--store DIR] [--seeds 10] [--jobs 1] [--methods ...] [--workers 1]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import time
from pathlib import Path

import numpy as np

from benchmark.registry import make_optimizer
from benchmark.replay import replay
from benchmark.task import list_datasets, load_tasks
from metagen.store.layout import read_metadata
from metagen.store.synth import synthesize

DEFAULT_STORE = Path("/tmp/metagen-bench/paper-seed0")
METHODS = ("random_search", "bohb", "asha", "hyperband")
VERSIONS = ("micro", "mini", "extended")


def ensure_store(path: Path) -> Path:
    """The cached synthetic paper store, generated on first use."""
    if not (path / "store.json").is_file():
        print(f"generating the synthetic paper store in {path} (once) ...", flush=True)
        t0 = time.perf_counter()
        synthesize(path, profile="paper", seed=0)
        print(f"  done in {time.perf_counter() - t0:.1f} s", flush=True)
    meta = read_metadata(path)
    if not meta.synthetic or meta.generator.get("profile") != "paper":
        raise SystemExit(f"{path} is not the synthetic paper store; pass --store to another directory")
    return path


def run_method(store: str, method: str, seeds: int, workers: int) -> tuple[str, float, int, int, list[float]]:
    """All datasets x seeds of one method: (method, seconds, replays, epochs, final regrets)."""
    tasks = [t for v in VERSIONS for t in load_tasks(store, v)]
    t0 = time.perf_counter()
    epochs, regrets = 0, []
    for task in tasks:
        for seed in range(seeds):
            traj = replay(task, make_optimizer(method, task.view, seed), None, n_workers=workers)
            epochs += traj.time.size
            regrets.append(traj.final_regret)
    return method, time.perf_counter() - t0, len(tasks) * seeds, epochs, regrets


def main() -> None:
    """Parses arguments, runs, prints the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=DEFAULT_STORE)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=1, help="processes (one method per process)")
    ap.add_argument("--workers", type=int, default=1, help="simulated workers per replay")
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    args = ap.parse_args()
    store = str(ensure_store(args.store))

    t0 = time.perf_counter()
    n_tasks = sum(len(load_tasks(store, v)) for v in VERSIONS)
    t_load = time.perf_counter() - t0
    sizes = {v: len(list_datasets(store, v)) for v in VERSIONS}
    print(f"store {store}: {n_tasks} datasets {sizes}; tasks loaded in {t_load:.2f} s (cold)")

    t0 = time.perf_counter()
    if args.jobs == 1:
        results = [run_method(store, m, args.seeds, args.workers) for m in args.methods]
    else:
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
            futures = [pool.submit(run_method, store, m, args.seeds, args.workers) for m in args.methods]
            results = [f.result() for f in futures]
    wall = time.perf_counter() - t0

    print(f"\n{'method':<14} {'replays':>8} {'epochs':>9} {'wall s':>8} {'ms/replay':>10} {'mean final regret*':>19}")
    total_replays = total_epochs = 0
    for method, seconds, replays, epochs, regrets in results:
        total_replays += replays
        total_epochs += epochs
        print(
            f"{method:<14} {replays:>8} {epochs:>9} {seconds:>8.2f} {1000 * seconds / replays:>10.2f} "
            f"{np.mean(regrets):>19.3f}"
        )
    print(
        f"\nall: {total_replays} replays, {total_epochs} epoch events in {wall:.1f} s wall "
        f"(jobs={args.jobs}, workers={args.workers}); target < 120 s: {'MET' if wall < 120 else 'NOT MET'}"
    )
    print("* synthetic store: regrets are a sanity check, not results")


if __name__ == "__main__":
    main()
