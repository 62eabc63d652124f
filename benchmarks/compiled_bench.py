"""Speed of the numba-compiled GP fit (``surrogates.compiled``) against torch's fused fit (``surrogates.fused``).

    .venv/bin/python -m benchmarks.compiled_bench [--store stores/offline10-64px --version offline64]
        [--sizes 10,50,100,150,200,250] [--methods quicktune,quicktune-M,quicktune-C,quicktune-G,dyhpo]
        [--datasets OCR_20,DIG_10] [--seeds 0,1] [--budget 600]

Everything runs in this one process with 1 torch thread and BLAS on one thread; the two implementations are
interleaved and times are CPU seconds of this process (``time.process_time``), which other jobs on a loaded
machine do not inflate.

1. One Adam step at ``n`` observations (DyHPO and Quick-Tune networks, fitted on the first ``n`` of 500
   observed epochs of the store's runs): a 50-step fit of each implementation divided by 50, fastest of
   ``--repeats``; both always run (the size limits of ``surrogates.compiled.MAX_ROWS`` do not apply here).
2. Main-job cells: every (method, dataset, seed) cell replayed with ``DeepKernelGP.fit`` as shipped
   (compiled up to ``MAX_ROWS`` observations, fused above) and with the fused fit only; CPU seconds per
   method and their ratio, and the final regrets (float32 rounding differs between the two, so a cell may
   take another trajectory: compare sums over many cells, not single cells). Meta-training is done (and
   cached) before the timing.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from benchmark.cells import CellJob, CellOutcome, run_cell
from benchmark.methods.dyhpo import DyHPO
from benchmark.methods.graybox_bo import GrayBoxBO
from benchmark.methods.quicktune import make_quicktune
from benchmark.registry import method_options, spec
from benchmarks.quicktune_bench import bench_view, observe
from surrogates.compiled import CompiledFit
from surrogates.data import load_store_tasks
from surrogates.fused import FusedFit
from surrogates.gp import DeepKernelGP

STEPS = 50


def step_ms(opt: GrayBoxBO, n: int, repeats: int) -> tuple[float, float]:
    """CPU ms per Adam step of a ``STEPS``-step fit on ``n`` observations: (fused, compiled), fastest of ``repeats``."""
    opt.model.train()
    batch = opt.training_batch().subset(np.arange(n))
    best: dict[type[FusedFit] | type[CompiledFit], float] = {FusedFit: np.inf, CompiledFit: np.inf}
    for _ in range(repeats):
        for cls in best:
            model = copy.deepcopy(opt.model)
            t0 = time.process_time()
            cls(model, batch, 1e-3).run(STEPS)
            best[cls] = min(best[cls], (time.process_time() - t0) / STEPS * 1e3)
    return best[FusedFit], best[CompiledFit]


def replay(jobs: list[CellJob], compiled: bool) -> tuple[dict[str, float], list[CellOutcome]]:
    """Runs ``jobs`` one by one with the compiled fit on or off; CPU seconds per method and the outcomes."""
    cpu: dict[str, float] = {}
    outcomes = []
    DeepKernelGP.compiled_fit = compiled
    try:
        for job in jobs:
            t0 = time.process_time()
            outcome = run_cell(job)
            if outcome.error:
                raise SystemExit(f"{job.method} / {job.dataset}: {outcome.error}")
            cpu[job.method] = cpu.get(job.method, 0.0) + time.process_time() - t0
            outcomes.append(outcome)
    finally:
        DeepKernelGP.compiled_fit = True
    return cpu, outcomes


def cells(store: str, version: str, methods: list[str], datasets: list[str], seeds: list[int], budget: float) -> None:
    """Prints CPU seconds per method of the cells replayed with the shipped fit and with the fused fit only."""
    cache = tempfile.gettempdir() + "/compiled-bench-cache"

    def jobs(out: str) -> list[CellJob]:
        return [CellJob(store, version, m, method_options(m, {}), d, s, budget, "none", 1, out, cache_dir=cache,
                        progress_every_s=0.0)
                for d in datasets for m in methods for s in seeds]  # fmt: skip

    for job in jobs(tempfile.mkdtemp()):  # meta-training (cached) before anything is timed
        if spec(job.registered).needs_context and job.seed == seeds[0]:
            run_cell(dataclasses.replace(job, budget_s=1e-9))
    fused_cpu, fused_out = replay(jobs(tempfile.mkdtemp()), compiled=False)
    new_cpu, new_out = replay(jobs(tempfile.mkdtemp()), compiled=True)
    print(f"{'method':<14}{'cells':>6}{'fused (s)':>11}{'shipped (s)':>13}{'speed-up':>10}")
    for m in methods:
        k = len(datasets) * len(seeds)
        print(f"{m:<14}{k:>6}{fused_cpu[m]:>11.1f}{new_cpu[m]:>13.1f}{fused_cpu[m] / new_cpu[m]:>9.2f}x")
    total_old, total_new = sum(fused_cpu.values()), sum(new_cpu.values())
    print(f"{'all':<14}{len(fused_out):>6}{total_old:>11.1f}{total_new:>13.1f}{total_old / total_new:>9.2f}x")
    old_mean, new_mean = (np.mean([o.final_regret for o in out]) for out in (fused_out, new_out))
    print(f"final regret per cell (fused / shipped), mean: {old_mean:.4f} / {new_mean:.4f}")
    for a, b in zip(fused_out, new_out, strict=True):
        print(f"    {a.job.method} / {a.job.dataset} / seed {a.job.seed}: regret {a.final_regret:.4f} / "
              f"{b.final_regret:.4f}, epochs {a.rows} / {b.rows}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="stores/offline10-64px")
    parser.add_argument("--version", default="offline64")
    parser.add_argument("--sizes", default="10,50,100,150,200,250", help="observations of the timed Adam steps")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats per size (fastest kept)")
    parser.add_argument("--methods", default="quicktune,quicktune-M,quicktune-C,quicktune-G,dyhpo")
    parser.add_argument("--datasets", default="OCR_20,DIG_10", help="datasets of the timed cells ('' = none)")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--budget", type=float, default=600.0, help="simulated seconds per cell (main job: 600)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    threadpool_limits(1)
    tasks = {t.name: t for t in load_store_tasks(args.store, args.version)}
    view, values = bench_view(tasks, args.version)
    print(f"store {args.store} version {args.version}; torch threads {torch.get_num_threads()}")
    print(f"\n== one Adam step (CPU ms, {STEPS}-step fits): fused vs compiled ==")
    print(f"{'network':<12}{'n':>5}{'fused':>9}{'compiled':>10}{'speed-up':>10}")
    builders: dict[str, Callable[[], GrayBoxBO]] = {
        "dyhpo": lambda: DyHPO(view, 0),
        "quicktune": lambda: make_quicktune(view, 0, None, meta_learn=False),
    }
    for name, build in builders.items():
        opt = build()
        observe(opt, values)
        for n in (int(s) for s in args.sizes.split(",") if s):
            old, new = step_ms(opt, n, args.repeats)
            print(f"{name:<12}{n:>5}{old:>9.3f}{new:>10.3f}{old / new:>9.2f}x", flush=True)
    datasets = [d for d in args.datasets.split(",") if d]
    if datasets:
        seeds = [int(s) for s in args.seeds.split(",")]
        print(f"\n== main-job cells (budget {args.budget:g} s, reference schedule): fused only vs as shipped ==")
        cells(args.store, args.version, args.methods.split(","), datasets, seeds, args.budget)


if __name__ == "__main__":
    main()
