"""Speed of GP fits batched across replays (``surrogates.batched``) against the same fits one by one.

    .venv/bin/python -m benchmarks.lockstep_bench [--store stores/offline10-64px --version offline64]
        [--members 5] [--sizes 10,50,150,500] [--methods dyhpo,quicktune-M] [--dataset DIG_6] [--budget 60]

Everything runs in this one process with 1 torch thread; new and old are interleaved and the fastest
repeat is kept. Times are CPU seconds of this process (``time.process_time``), which other jobs on a
loaded machine do not inflate, next to wall seconds where they matter.

1. One Adam step at ``n`` observations: one :class:`surrogates.batched.BatchedFit` step of ``--members``
   surrogates (DyHPO and Quick-Tune networks initialised from different seeds, fitted on the first ``n``
   of 500 observed epochs of the store's runs) against one :class:`surrogates.fused.FusedFit` step of each.
2. Main-job cells: each group of ``--methods`` (``a+b`` = one group) on ``--dataset`` at ``--budget``
   simulated seconds and the reference schedule, ``--members`` seeds each, replayed in lockstep
   (``benchmark.cells.run_lockstep``, as the main job runs a dataset's GP cells) and one after the other
   (``run_cell``); wall and CPU seconds and the per-cell final regrets. Meta-training is done (and cached)
   before the timing.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch

from benchmark.cells import CellJob, run_cell, run_lockstep
from benchmark.methods.dyhpo import DyHPO
from benchmark.methods.graybox_bo import GrayBoxBO
from benchmark.methods.quicktune import make_quicktune
from benchmark.registry import method_options, spec
from benchmarks.quicktune_bench import bench_view, observe
from surrogates.batched import BatchedFit
from surrogates.data import load_store_tasks
from surrogates.fused import FusedFit


def _cpu_ms(step: Callable[[], object], steps: int) -> float:
    t0 = time.process_time()
    for _ in range(steps):
        step()
    return (time.process_time() - t0) / steps * 1e3


def adam_steps(build: Callable[[int], GrayBoxBO], members: int, n: int, repeats: int) -> tuple[float, float]:
    """CPU ms of one batched step of ``members`` surrogates, and of one fused step of each (summed)."""
    opts = [build(seed) for seed in range(members)]
    for opt in opts:
        opt.model.train()
    batches = [opt.training_batch().subset(np.arange(n)) for opt in opts]
    batched = BatchedFit([o.model for o in opts], batches, 1e-3)
    batched._keep(list(range(members)))
    single = [FusedFit(o.model, b, 1e-3) for o, b in zip(opts, batches, strict=True)]
    steps = 20 if n <= 150 else 4
    new = old = np.inf
    with torch.inference_mode():
        batched.step(False)
        for fit in single:
            fit.step(False)
        for _ in range(repeats):  # interleaved; the fastest repeat of each is the least disturbed
            new = min(new, _cpu_ms(functools.partial(batched.step, False), steps))
            old = min(old, sum(_cpu_ms(functools.partial(fit.step, False), steps) for fit in single))
    return new, old


def cells(
    store: str, version: str, methods: list[str], dataset: str, budget: float, seeds: list[int], dtype: str = "float32"
) -> None:
    """Replays the cells of ``methods`` x ``seeds`` on ``dataset`` as the main job's lockstep group and one
    after the other, with the surrogates in ``dtype``; prints wall/CPU seconds and the per-cell final regrets."""
    options = {} if dtype == "float32" else {"schedule": {"dtype": dtype}}

    def jobs(out: str) -> list[CellJob]:
        return [CellJob(store, version, m, method_options(m, options), dataset, s, budget, "none", 1, out,
                        cache_dir=tempfile.gettempdir() + "/lockstep-bench-cache", progress_every_s=0.0)
                for m in methods for s in seeds]  # fmt: skip

    make_optimizer_cache = jobs(tempfile.mkdtemp())  # meta-training (cached) before anything is timed
    for job in make_optimizer_cache:
        if spec(job.registered).needs_context:
            run_cell(dataclasses.replace(job, budget_s=1e-9))
    results = {}
    for name, run in (("lockstep", run_lockstep), ("one by one", lambda js: [run_cell(j) for j in js])):
        w0, c0 = time.perf_counter(), time.process_time()
        outcomes = run(jobs(tempfile.mkdtemp()))
        results[name] = (time.perf_counter() - w0, time.process_time() - c0, outcomes)
        errors = [o.error for o in outcomes if o.error]
        if errors:
            raise SystemExit(f"{dataset}: {errors[0]}")
    (lw, lc, lo), (uw, uc, uo) = results["lockstep"], results["one by one"]
    label = ",".join(methods) + f" {dtype}"
    print(f"{label:<28}{dataset:<8}{len(lo):>6}{uw:>9.1f}{lw:>9.1f}{uw / lw:>7.2f}x{uc:>9.1f}{lc:>9.1f}"
          f"{uc / lc:>7.2f}x", flush=True)  # fmt: skip
    for m in methods:
        pick = [i for i, o in enumerate(lo) if o.job.method == m]
        print(f"    {m}: final regret per seed, lockstep {' '.join(f'{lo[i].final_regret:.4f}' for i in pick)}; "
              f"one by one {' '.join(f'{uo[i].final_regret:.4f}' for i in pick)}; epochs "
              f"{[lo[i].rows for i in pick]} / {[uo[i].rows for i in pick]}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="stores/offline10-64px")
    parser.add_argument("--version", default="offline64")
    parser.add_argument("--members", type=int, default=5, help="surrogates per batched fit (seeds of a cell)")
    parser.add_argument("--sizes", default="10,50,150,500", help="observations of the timed Adam steps")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats per size (fastest kept)")
    parser.add_argument(
        "--methods", default="dyhpo,quicktune-M", help="comma-separated groups of methods joined by '+' ('' = none)"
    )
    parser.add_argument("--dataset", default="DIG_6", help="dataset of the timed cells")
    parser.add_argument("--budget", type=float, default=60.0, help="simulated seconds per cell (main job: 60)")
    parser.add_argument("--dtypes", default="float32", help="comma-separated surrogate precisions of the cells")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tasks = {t.name: t for t in load_store_tasks(args.store, args.version)}
    view, values = bench_view(tasks, args.version)
    print(f"store {args.store} version {args.version}; torch threads {torch.get_num_threads()}")

    def build(method: str) -> Callable[[int], GrayBoxBO]:
        def make(seed: int) -> GrayBoxBO:
            opt = DyHPO(view, seed) if method == "dyhpo" else make_quicktune(view, seed, None, meta_learn=False)
            observe(opt, values)
            return opt

        return make

    print(f"\n== one Adam step (CPU ms): {args.members} surrogates batched vs each alone ==")
    print(f"{'method':<12}{'n':>5}{'alone':>9}{'batched':>9}{'speed-up':>10}{'per member':>12}")
    for method in ("dyhpo", "quicktune-M"):
        for n in (int(s) for s in args.sizes.split(",") if s):
            new, old = adam_steps(build(method), args.members, n, args.repeats)
            print(f"{method:<12}{n:>5}{old:>9.2f}{new:>9.2f}{old / new:>9.2f}x{new / args.members:>12.2f}", flush=True)

    methods = [m for m in args.methods.split(",") if m]
    if methods:
        print(f"\n== main-job cells, budget {args.budget:g} s, reference schedule: lockstep vs one by one ==")
        print(f"{'methods':<28}{'dataset':<8}{'cells':>6}{'wall 1x1':>9}{'wall ls':>9}{'ratio':>8}{'cpu 1x1':>9}"
              f"{'cpu ls':>9}{'ratio':>8}")  # fmt: skip
        for group in methods:  # methods joined by '+' replay as one lockstep group (as the main job's)
            for dtype in args.dtypes.split(","):
                seeds = list(range(args.members))
                cells(args.store, args.version, group.split("+"), args.dataset, args.budget, seeds, dtype)


if __name__ == "__main__":
    main()
