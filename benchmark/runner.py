"""Running methods x datasets x seeds of one store version into a RESULTS directory (resumable, parallel).

Every cell (method, dataset, seed) is one replay whose trajectory becomes one Parquet file
(:mod:`benchmark.results`). With ``lockstep`` (opt-in, see :class:`benchmark.config.RunConfig`) the seeds of a
(method, dataset) replay together in one process, their GP fits batched (:func:`benchmark.cells.run_lockstep`);
otherwise each cell is one :func:`benchmark.cells.run_cell`. Cells whose file exists are skipped, so a killed run is
resumed by running the same command again. Cells run in ``jobs`` local processes (spawned, each
loading the store once) or in a SLURM job array (``executor=slurm``, :mod:`benchmark.slurm`). A failing
cell does not stop the others; failures are listed at the end and their cells are retried by the next run.
The torch-free core; torch is imported only by the processes that build torch-based methods.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import platform
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from benchmark.cells import PROGRESS_EVERY_S, CellJob, CellOutcome, lockstep_groups, run_lockstep
from benchmark.clock import OverheadPolicy
from benchmark.config import RunConfig
from benchmark.environment import numerics_environment
from benchmark.registry import METHODS, default_options, method_options, spec
from benchmark.results import merge_run_record, store_hash
from benchmark.task import default_budget, list_datasets, load_tasks


@dataclass
class RunSummary:
    """Counts of a benchmark run."""

    out: str
    planned: int = 0
    skipped: int = 0
    done: int = 0
    failed: list[CellOutcome] = field(default_factory=list)
    wall_s: float = 0.0

    def __str__(self) -> str:
        lines = [
            f"{self.done} cells replayed, {self.skipped} already done, {len(self.failed)} failed "
            f"({self.wall_s:.1f} s) -> {self.out}"
        ]
        for f in self.failed[:20]:
            j = f.job
            lines.append(f"  FAILED {j.method} / {j.dataset} / seed {j.seed}: {f.error}")
        return "\n".join(lines)


def plan(cfg: RunConfig) -> tuple[list[CellJob], dict[str, Any]]:
    """All cells of a config (checked: store, version, methods, datasets, budget, overhead, workers)
    and the ``run.json`` record of the run."""
    datasets = list(cfg.datasets) if cfg.datasets else list_datasets(cfg.store, cfg.version)
    tasks = load_tasks(cfg.store, cfg.version, datasets)  # clear errors for missing datasets, before any work
    if not cfg.methods:
        raise ValueError("no methods given; e.g. methods=[random_search,bohb]")
    if not cfg.seeds:
        raise ValueError("no seeds given; e.g. seeds=[0,1,2]")
    unknown = [m for m in cfg.method_options if m not in cfg.methods]
    if unknown:
        raise ValueError(f"method_options for methods not in methods={list(cfg.methods)}: {unknown}")
    bases, variant_options = resolve_variants(cfg)
    options: dict[str, dict[str, Any]] = {}
    for m in cfg.methods:
        base = bases.get(m, m)
        spec(base).load()  # fail fast on methods that cannot be imported
        own = variant_options.get(m, {})
        options[m] = method_options(base, {**own, **cfg.method_options.get(m, {})})
        check = spec(base).load_check()
        if check is not None:  # e.g. a baseline whose runs the store lacks: fails here, before any cell runs
            for task in tasks:
                check(task.view, options[m])
    budget = float(cfg.budget_s) if cfg.budget_s is not None else default_budget(cfg.version)
    if not budget > 0:
        raise ValueError(f"budget_s must be positive, got {cfg.budget_s}")
    overhead = OverheadPolicy.parse(cfg.overhead)
    if cfg.executor not in ("local", "slurm"):
        raise ValueError(f"executor must be local or slurm, got {cfg.executor!r}")
    if int(cfg.workers) < 1 or int(cfg.jobs) < 1:
        raise ValueError(f"workers and jobs must be at least 1, got workers={cfg.workers}, jobs={cfg.jobs}")
    jobs = [
        CellJob(
            store=str(cfg.store),
            version=cfg.version,
            method=m,
            options=options[m],
            dataset=d,
            seed=int(s),
            budget_s=budget,
            overhead=overhead.label,
            workers=int(cfg.workers),
            out=str(cfg.out),
            folds=int(cfg.folds),
            context_seed=int(cfg.context_seed),
            cache_dir=cfg.cache_dir,
            progress_every_s=PROGRESS_EVERY_S if cfg.progress else 0.0,
            base=bases.get(m, ""),
        )
        for s in cfg.seeds  # seed-major: a run stopped early holds every method on the same cells
        for d in datasets
        for m in cfg.methods
    ]
    record = {
        "store": str(Path(cfg.store).resolve()),
        "store_hash": store_hash(cfg.store),
        "version": cfg.version,
        "methods": list(cfg.methods),
        "method_options": options,
        "variants": {m: {"method": b, "options": variant_options[m]} for m, b in bases.items()},
        "seeds": [int(s) for s in cfg.seeds],
        "datasets": datasets,
        "budget_s": budget,
        "overhead": overhead.label,
        "workers": int(cfg.workers),
        "folds": int(cfg.folds),
        "context_seed": int(cfg.context_seed),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": platform.python_version(),
        "environment": numerics_environment(),
    }
    return jobs, record


def resolve_variants(cfg: RunConfig) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """The registered method and the options of each labelled variant that ``cfg.methods`` lists (checked: a
    variant has a ``method`` and optional ``options``, its name is not a registered one, its method is)."""
    bases: dict[str, str] = {}
    options: dict[str, dict[str, Any]] = {}
    for name, variant in cfg.variants.items():
        extra = sorted(set(variant) - {"method", "options"})
        if "method" not in variant or extra or not isinstance(variant.get("options", {}), Mapping):
            raise ValueError(
                f"variant '{name}' must be {{method: REGISTERED_METHOD, options: {{OPTION: VALUE}}}}, "
                f"got {dict(variant)}"
            )
        if name in METHODS:
            raise ValueError(f"variant '{name}' has the name of a registered method; give it its own name")
        spec(str(variant["method"]))  # UnknownMethodError naming the registered methods
        if name in cfg.methods:
            bases[name] = str(variant["method"])
            options[name] = dict(variant.get("options", {}))
    return bases, options


def run_benchmark(cfg: RunConfig) -> RunSummary:
    """Plans, skips finished cells, replays the rest (``cfg.jobs`` processes) and writes ``run.json``."""
    t0 = time.perf_counter()
    jobs, record = plan(cfg)
    bases = record["variants"]
    defaults = {m: default_options(bases[m]["method"] if m in bases else m) for m in cfg.methods}
    merge_run_record(cfg.out, record, defaults=defaults)
    todo = [j for j in jobs if not j.path.is_file()]
    summary = RunSummary(out=str(cfg.out), planned=len(jobs), skipped=len(jobs) - len(todo))
    bar = tqdm(total=len(todo), desc="cells", unit="cell", disable=not cfg.progress or not todo)
    if cfg.executor == "slurm" and todo:
        from benchmark.slurm import run_on_slurm

        for outcome in run_on_slurm(todo, cfg.slurm, cfg.out):
            _collect(summary, outcome, bar)
    else:
        groups = lockstep_groups(todo) if cfg.lockstep else [[j] for j in todo]
        if int(cfg.jobs) == 1 or len(groups) <= 1:
            for group in groups:
                for outcome in run_lockstep(group):
                    _collect(summary, outcome, bar)
        else:
            ctx = multiprocessing.get_context("spawn")  # polars is multithreaded: never fork it
            with cf.ProcessPoolExecutor(max_workers=int(cfg.jobs), mp_context=ctx) as pool:
                futures = [pool.submit(run_lockstep, group) for group in groups]
                for fut in cf.as_completed(futures):
                    for outcome in fut.result():
                        _collect(summary, outcome, bar)
    bar.close()
    summary.wall_s = time.perf_counter() - t0
    return summary


def _collect(summary: RunSummary, outcome: CellOutcome, bar: tqdm) -> None:
    if not bar.disable:
        bar.write(outcome.line())
    if outcome.error is None:
        summary.done += 1
    else:
        summary.failed.append(outcome)
    bar.update(1)


def summary_dict(summary: RunSummary) -> dict[str, Any]:
    """The summary as plain data (for logs and tests)."""
    d = asdict(summary)
    d["failed"] = [{"cell": asdict(f.job), "error": f.error} for f in summary.failed]
    return d
