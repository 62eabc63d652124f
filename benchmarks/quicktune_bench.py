"""Speed of the deep-kernel GP surrogates (DyHPO, Quick-Tune): the current code vs the previous gpytorch path.

    .venv/bin/python -m benchmarks.quicktune_bench [--store stores/offline10-64px --version offline64]
        [--refine-steps 3] [--reset-steps 1] [--meta-iterations 300]

Everything runs in this one process with 1 torch thread, new and old interleaved, so the printed
ratios compare the two implementations under the same load. "new" is ``surrogates.gp.DeepKernelGP`` as
shipped: fits run ``surrogates.compiled.CompiledFit`` (the whole fit in one numba call) up to
``surrogates.compiled.MAX_ROWS`` observations and ``surrogates.fused.FusedFit`` (hand-written
forward/backward of the extractor and of the exact-GP likelihood, one fused Adam over a flat parameter
buffer) above; meta-training runs ``surrogates.compiled_meta.CompiledMetaStep`` (each iteration's two Adam steps and
each validation episode one numba call). "old" is
``surrogates.gp_gpytorch.GpytorchDeepKernelGP``: gpytorch's exact GP, autograd and single-tensor Adam, as this
project was before issue 13. Same model, same weights, same
number of Adam steps.

1. Meta-training time per iteration (fold 0 of the version's paper split, default config), new vs old,
   from ``--meta-iterations`` iterations (validation included), fastest of ``--repeats`` interleaved runs.
2. One Adam step of a fit (loss, backward, update; the fit's set-up amortised over 30 steps) at 10, 50,
   150 and 500 observations, new vs old (fastest of ``--step-repeats`` interleaved fits of 30 steps; the main job's
   replays fit at 2 to ~240 observations), and the floor: the same step's dense linear algebra alone (Gram
   product, exponential, Cholesky factor, solve, full inverse, feature-gradient product by torch's LAPACK/BLAS
   at the model's feature width), with ``old / floor``, the largest speed-up any implementation of the same
   exact-gradient step can reach on this thread.
3. One BO step (ask = refit + predicting 300 candidates + acquisition, plus tell) with 300 candidates
   and 500 observed epochs (100 pipelines x 5 epochs), at the reference refit schedule: a refine
   step (50 Adam steps) and a reset step (1,000 Adam steps), fastest of the measured steps of each
   implementation, and the speed-up.

New and old alternate, and the fastest measurement of each is reported: on a shared machine the
fastest is the one least disturbed by other load.

The candidates and observed curves are taken from the store's runs (several datasets of one version).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import time
from collections.abc import Callable

import numpy as np
import torch

from benchmark.methods.dyhpo import DyHPO
from benchmark.methods.graybox_bo import SCHEDULES, GrayBoxBO
from benchmark.methods.quicktune import make_quicktune
from benchmark.protocol import EpochResult, SearchView
from surrogates.data import TaskData, load_store_tasks
from surrogates.folds import paper_splits
from surrogates.gp import DeepKernelGP
from surrogates.gp_gpytorch import GpytorchDeepKernelGP, as_gpytorch
from surrogates.metatrain import MetaModel, MetaTrainConfig, meta_train

IMPLEMENTATIONS: dict[str, type[DeepKernelGP]] = {"new": DeepKernelGP, "old": GpytorchDeepKernelGP}


def bench_view(tasks: dict[str, TaskData], version: str, n: int = 300) -> tuple[SearchView, np.ndarray]:
    """A ``n``-candidate view from the pipelines (and curves) of several datasets of one version."""
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
    if len(x) < n:
        raise SystemExit(f"the version has only {len(x)} runs; the benchmark needs {n} candidates")
    t0 = tasks[names[0]]
    view = SearchView(
        name="bench", version=version, pipeline_ids=tuple(f"p{i}" for i in range(n)), models=tuple(models[:n]),
        features=x, feature_names=t0.feature_names, max_epochs=values.shape[1], meta_features=dict(t0.meta),
    )  # fmt: skip
    return view, values


def observe(opt: GrayBoxBO, values: np.ndarray, n_pipes: int = 100, epochs: int = 5) -> None:
    """Feeds ``n_pipes x epochs`` observed epochs (the fits they would trigger are skipped)."""
    for i in range(n_pipes):
        e = np.arange(1, epochs + 1)
        results = [EpochResult(i, int(k), float(np.nan_to_num(values[i, k - 1], nan=0.5)), 1.0, False) for k in e]
        opt.tell(opt.issue(i, epochs), results)


def use_implementation(opt: GrayBoxBO, name: str) -> GrayBoxBO:
    """Makes ``opt`` build its surrogates with implementation ``name`` (same weights, same model)."""
    if name == "old":
        factory = opt.model_factory
        opt.model_factory = lambda generator: as_gpytorch(factory(generator))
        opt.model = opt._fresh_model()
    return opt


def step_seconds(make: Callable[[], GrayBoxBO], values: np.ndarray, steps: int, reset: bool) -> list[float]:
    """Seconds of ``steps`` BO steps (ask + tell of one new epoch), refine steps or reset steps."""
    opt = make()
    observe(opt, values)
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


def gp_features(opt: GrayBoxBO) -> int:
    """Number of features ``k`` the extractor of ``opt``'s surrogate hands to the GP kernel."""
    batch = opt.training_batch().subset(np.arange(2))
    with torch.no_grad():
        was = opt.model.training
        opt.model.eval()
        k = int(opt.model.extractor(batch).shape[1])
        opt.model.train(was)
    return k


def adam_step_ms(opt: GrayBoxBO, n_obs: int, steps: int = 30) -> float:
    """Milliseconds per Adam step of ``opt``'s surrogate fitted on its first ``n_obs`` observations."""
    batch = opt.training_batch().subset(np.arange(n_obs))
    opt.model.fit(batch, 2)
    t0 = time.perf_counter()
    opt.model.fit(batch, steps)
    return (time.perf_counter() - t0) / steps * 1e3


def dense_floor_ms(n: int, k: int, dtype: torch.dtype, repeats: int = 20) -> float:
    """Milliseconds of the dense linear algebra any exact-gradient step of an RBF GP on ``n`` features ``(n, k)``
    must do, by torch's LAPACK/BLAS on this thread: the Gram product, the kernel's exponential, the Cholesky
    factor, the solve for ``K^-1 (y - c)``, the full inverse the gradient needs and the feature-gradient product.

    Nothing of the network, the optimizer or Python is counted: a step cannot be faster than this at this
    model's size, so ``old / floor`` bounds the speed-up any implementation of the same step can reach here.
    """
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(n, k, generator=gen, dtype=dtype) / k**0.5
    y = torch.randn(n, 1, generator=gen, dtype=dtype)

    def step() -> None:
        sq = (z * z).sum(1, keepdim=True)
        kf = torch.addmm(sq, z, z.T, alpha=-2.0).add_(sq.T).mul_(-0.5).exp_()
        kf.diagonal().add_(0.1)
        chol = torch.linalg.cholesky_ex(kf)[0]
        torch.cholesky_solve(y, chol)
        inv = torch.cholesky_inverse(chol)
        torch.addmm(z, inv.mul_(kf), z, alpha=-1.0)

    step()
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeats):
            step()
        best = min(best, (time.perf_counter() - t0) / repeats)
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="stores/offline10-64px")
    parser.add_argument("--version", default="offline64")
    parser.add_argument("--refine-steps", type=int, default=3, help="measured refine steps per method and code")
    parser.add_argument("--reset-steps", type=int, default=1, help="measured reset steps per method and code")
    parser.add_argument("--meta-iterations", type=int, default=300, help="meta-training iterations timed per code")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved meta-training runs per code (fastest)")
    parser.add_argument("--step-repeats", type=int, default=3, help="interleaved 30-step fits per code and size")
    parser.add_argument("--skip-meta", action="store_true", help="do not time meta-training")
    parser.add_argument("--skip-steps", action="store_true", help="do not time BO steps")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tasks = {t.name: t for t in load_store_tasks(args.store, args.version)}
    split = paper_splits(list(tasks))[0]
    train, valid = [tasks[d] for d in split.train], [tasks[d] for d in split.valid]
    print(f"store {args.store} version {args.version}: {len(tasks)} datasets; torch threads {torch.get_num_threads()}")

    meta_model: MetaModel | None = None
    if not args.skip_meta:
        config = dataclasses.replace(MetaTrainConfig(), iterations=args.meta_iterations)
        print(f"\n== meta-training, fold 0 ({len(train)} train / {len(valid)} valid datasets), "
              f"{config.iterations} iterations, validation every {config.val_every} ==")  # fmt: skip
        per_it: dict[str, float] = {}
        info: dict[str, dict] = {}
        for _ in range(args.repeats):  # interleaved; the fastest repeat of each is the least disturbed by load
            for name, cls in IMPLEMENTATIONS.items():
                t0 = time.perf_counter()
                model = meta_train(train, valid, config, gp_class=cls)
                per_it[name] = min(per_it.get(name, np.inf), (time.perf_counter() - t0) / config.iterations)
                info[name] = model.info
                meta_model = meta_model or model
        for name in IMPLEMENTATIONS:
            print(
                f"{name}: {per_it[name] * 1e3:7.2f} ms per iteration "
                f"(best val MSE {info[name]['best_val_mse_perf']:.4f} at it {info[name]['best_iteration_perf']})"
            )
        print(f"speed-up: {per_it['old'] / per_it['new']:.1f}x")
    if meta_model is None:
        meta_model = meta_train(train, valid, dataclasses.replace(MetaTrainConfig(), iterations=20))

    view, values = bench_view(tasks, args.version)

    def build(method: str, name: str) -> GrayBoxBO:
        if method == "dyhpo":
            return use_implementation(DyHPO(view, 0, schedule="reference"), name)
        return use_implementation(make_quicktune(view, 0, None, meta_model=meta_model, schedule="reference"), name)

    print("\n== one Adam step of a fit (ms), by number of observations ==")
    print("floor: the step's dense linear algebra alone (dense_floor_ms); bound = old / floor, the largest speed-up")
    print("any implementation of the same exact-gradient step can reach on this thread")
    print(f"{'method':<10}{'n':>5}{'k':>5}{'old':>9}{'new':>9}{'speed-up':>10}{'floor':>9}{'bound':>9}")
    for method in ("dyhpo", "quicktune"):
        for n_obs in (10, 50, 150, 500):
            ms = {"old": np.inf, "new": np.inf}
            for _ in range(args.step_repeats):
                for name in ms:
                    opt = build(method, name)
                    observe(opt, values)
                    ms[name] = min(ms[name], adam_step_ms(opt, n_obs))
            k = gp_features(opt)
            floor = dense_floor_ms(n_obs, k, next(opt.model.parameters()).dtype)
            print(f"{method:<10}{n_obs:>5}{k:>5}{ms['old']:>9.2f}{ms['new']:>9.2f}{ms['old'] / ms['new']:>9.1f}x"
                  f"{floor:>9.2f}{ms['old'] / floor:>8.1f}x", flush=True)  # fmt: skip
    if args.skip_steps:
        return
    sched = SCHEDULES["reference"]
    print(f"\n== BO step at the reference schedule ({sched}): {view.n} candidates, 500 observed epochs ==")
    print(f"{'method':<10}{'phase':<8}{'old (s)':>10}{'new (s)':>10}{'speed-up':>10}")
    for method in ("dyhpo", "quicktune"):
        for phase, reset, n in (("refine", False, args.refine_steps), ("reset", True, args.reset_steps)):
            times: dict[str, list[float]] = {"old": [], "new": []}
            for _ in range(n):  # interleaved: old, new, old, new, ...
                for name, out in times.items():
                    out.extend(step_seconds(functools.partial(build, method, name), values, 1, reset))
            med = {name: min(out) for name, out in times.items()}
            print(f"{method:<10}{phase:<8}{med['old']:>10.3f}{med['new']:>10.3f}"
                  f"{med['old'] / med['new']:>9.1f}x", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
