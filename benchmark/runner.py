"""Running methods x datasets x seeds of one store version into a RESULTS directory (resumable, parallel).

Every cell (method, dataset, seed) is one :func:`benchmark.replay.replay`; its trajectory becomes
one Parquet file (:mod:`benchmark.results`). Cells whose file exists are skipped, so a killed run is
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
import traceback
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from benchmark.clock import OverheadPolicy
from benchmark.config import RunConfig
from benchmark.registry import make_optimizer, spec
from benchmark.replay import replay
from benchmark.results import cell_path, merge_run_record, store_hash, trajectory_frame, write_cell
from benchmark.task import default_budget, list_datasets, load_tasks, make_context

PROGRESS_EVERY_S = 30.0
"""A cell still running after this many wall seconds prints a progress line this often."""


@dataclass(frozen=True)
class CellJob:
    """Everything a process needs to replay one cell (picklable)."""

    store: str
    version: str
    method: str
    options: dict[str, Any]
    dataset: str
    seed: int
    budget_s: float
    overhead: str
    workers: int
    out: str
    folds: int = 5
    context_seed: int = 42
    cache_dir: str | None = None
    progress_every_s: float = PROGRESS_EVERY_S

    @property
    def path(self) -> Path:
        """The cell's result file."""
        return cell_path(self.out, self.version, self.method, self.dataset, self.seed)


@dataclass(frozen=True)
class CellOutcome:
    """What became of a cell: rows written, asks, wall seconds, final regret, or the error.

    ``note`` describes settings worth printing next to the cell (e.g. a GP method's refit schedule).
    """

    job: CellJob
    rows: int = 0
    wall_s: float = 0.0
    final_regret: float = float("nan")
    error: str | None = None
    steps: int = 0
    note: str = ""

    def line(self) -> str:
        """One line for the log: the cell, its wall time and its result or error."""
        j = self.job
        head = f"{j.method} / {j.dataset} / seed {j.seed}" + (f" [{self.note}]" if self.note else "")
        if self.error is not None:
            return f"{head}: FAILED after {self.wall_s:.1f} s: {self.error}"
        regret = f"final regret {self.final_regret:.4f}"
        return f"{head}: {self.steps} steps, {self.rows} epochs in {self.wall_s:.1f} s, {regret}"


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
    load_tasks(cfg.store, cfg.version, datasets)  # clear errors for missing datasets, before any work
    if not cfg.methods:
        raise ValueError("no methods given; e.g. methods=[random_search,bohb]")
    if not cfg.seeds:
        raise ValueError("no seeds given; e.g. seeds=[0,1,2]")
    unknown = [m for m in cfg.method_options if m not in cfg.methods]
    if unknown:
        raise ValueError(f"method_options for methods not in methods={list(cfg.methods)}: {unknown}")
    options: dict[str, dict[str, Any]] = {}
    for m in cfg.methods:
        s = spec(m)
        s.load()  # fail fast on methods that cannot be imported
        options[m] = {**s.options, **dict(cfg.method_options.get(m, {}))}
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
    }
    return jobs, record


class _Progress:
    """Prints a line every ``every_s`` wall seconds of a cell: asks so far and simulated time."""

    def __init__(self, job: CellJob, budget_s: float, note: str):
        self.job, self.budget_s, self.note = job, budget_s, note
        self.t0 = time.perf_counter()
        self.next = self.t0 + job.progress_every_s

    def __call__(self, steps: int, simulated_s: float) -> None:
        now = time.perf_counter()
        if self.job.progress_every_s > 0 and now >= self.next:
            self.next = now + self.job.progress_every_s
            j = self.job
            note = f" [{self.note}]" if self.note else ""
            print(f"  ... {j.method} / {j.dataset} / seed {j.seed}{note}: step {steps}, simulated "
                  f"{simulated_s:.0f} / {self.budget_s:.0f} s, wall {now - self.t0:.0f} s", flush=True)  # fmt: skip


def optimizer_note(optimizer: Any) -> str:
    """Settings of an optimizer worth printing: a GP method's refit schedule (``""`` otherwise)."""
    schedule = getattr(optimizer, "schedule", None)
    return f"schedule={schedule.label()}" if hasattr(schedule, "label") else ""


def run_cell(job: CellJob) -> CellOutcome:
    """Replays one cell and writes its file; errors are returned, not raised."""
    t0 = time.perf_counter()
    note = ""
    try:
        (task,) = load_tasks(job.store, job.version, [job.dataset])
        context = None
        if spec(job.method).needs_context:
            context = make_context(job.store, job.version, job.dataset, job.folds, job.context_seed, job.cache_dir)
        optimizer = make_optimizer(job.method, task.view, job.seed, context, **job.options)
        note = optimizer_note(optimizer)
        progress = _Progress(job, job.budget_s, note)
        built_s = time.perf_counter() - t0
        if 0 < job.progress_every_s <= built_s:  # e.g. Quick-Tune meta-training on a cache miss
            cell = f"{job.method} / {job.dataset} / seed {job.seed}"
            print(f"  ... {cell}: optimizer built in {built_s:.0f} s", flush=True)
        trajectory = replay(
            task, optimizer, job.budget_s, overhead=job.overhead, n_workers=job.workers, progress=progress
        )
        write_cell(job.path, trajectory_frame(trajectory, job.method, job.seed))
        steps = int(trajectory.step.max()) + 1 if trajectory.step.size else 0
        return CellOutcome(
            job, trajectory.time.size, time.perf_counter() - t0, trajectory.final_regret, steps=steps, note=note
        )
    except Exception as e:  # one failing cell never stops a run
        where = traceback.extract_tb(e.__traceback__)[-1]
        message = f"{type(e).__name__}: {e} (at {Path(where.filename).name}:{where.lineno})"
        return CellOutcome(job, wall_s=time.perf_counter() - t0, error=message, note=note)


def run_benchmark(cfg: RunConfig) -> RunSummary:
    """Plans, skips finished cells, replays the rest (``cfg.jobs`` processes) and writes ``run.json``."""
    t0 = time.perf_counter()
    jobs, record = plan(cfg)
    merge_run_record(cfg.out, record)
    todo = [j for j in jobs if not j.path.is_file()]
    summary = RunSummary(out=str(cfg.out), planned=len(jobs), skipped=len(jobs) - len(todo))
    bar = tqdm(total=len(todo), desc="cells", unit="cell", disable=not cfg.progress or not todo)
    if cfg.executor == "slurm" and todo:
        from benchmark.slurm import run_on_slurm

        for outcome in run_on_slurm(todo, cfg.slurm, cfg.out):
            _collect(summary, outcome, bar)
    elif int(cfg.jobs) == 1 or len(todo) <= 1:
        outcomes = map(run_cell, todo)
        for outcome in outcomes:
            _collect(summary, outcome, bar)
    else:
        ctx = multiprocessing.get_context("spawn")  # polars is multithreaded: never fork it
        with cf.ProcessPoolExecutor(max_workers=int(cfg.jobs), mp_context=ctx) as pool:
            futures = [pool.submit(run_cell, j) for j in todo]
            for fut in cf.as_completed(futures):
                _collect(summary, fut.result(), bar)
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
