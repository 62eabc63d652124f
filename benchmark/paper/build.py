"""Plan, run and write the paper: every cell of every experiment through the one runner, then every output.

:func:`plan_paper` checks everything (store, versions, methods and their options, budgets) and lists every
cell before any runs; :func:`run_paper` replays the cells that have no file yet (one RESULTS directory per
version under ``OUT/runs/``, resumable, locally or on SLURM through :func:`benchmark.runner.run_benchmark`)
and then writes the figures, tables and ``index.md`` (:func:`benchmark.paper.outputs.write_outputs`).
``OUT/paper.json`` records the plan: experiments with their labels and the entries left out (and why),
budgets, seeds, overhead policy and what every run of the command did (``history``, kept across reruns).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmark.config import PaperConfig, RunConfig
from benchmark.paper.common import MANIFEST, RUNS, read_manifest
from benchmark.paper.experiments import EXPERIMENTS, Entry, Experiment, union_entries, version_experiments
from benchmark.paper.outputs import write_outputs
from benchmark.registry import METHODS
from benchmark.runner import RunSummary, plan, run_benchmark
from benchmark.task import default_budget, list_datasets, load_tasks
from metagen.search_space import SearchSpace
from metagen.store import StoreError, StoreReader
from metagen.store.layout import metadata_fields


@dataclass
class PaperPlan:
    """What :func:`run_paper` will do: per version the experiments, the run config and the cells."""

    config: PaperConfig
    experiments: dict[str, list[Experiment]]
    runs: dict[str, RunConfig]
    planned: dict[str, int]
    todo: dict[str, int]
    n_models: dict[str, int] = field(default_factory=dict)
    summaries: dict[str, RunSummary] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


def runs_dir(out: str | Path, version: str) -> Path:
    """The RESULTS directory of one version under a paper output folder."""
    return Path(out) / RUNS / version


def _options(cfg: PaperConfig, e: Entry) -> dict[str, Any]:
    """The user's option overrides of an entry: those of its registered method, then those of its label."""
    user = dict(cfg.method_options.get(e.method, {}))
    if e.is_variant:
        user.update(cfg.method_options.get(e.label, {}))
    return user


def run_config(cfg: PaperConfig, version: str, datasets: list[str], entries: list[Entry]) -> RunConfig:
    """The :class:`RunConfig` of one version: every entry, variants declared under their labels."""
    variants = {
        e.label: {"method": e.method, "options": {**_options(cfg, e), **e.options}} for e in entries if e.is_variant
    }
    options = {e.label: _options(cfg, e) for e in entries if not e.is_variant and _options(cfg, e)}
    return RunConfig(
        store=str(cfg.store),
        out=str(runs_dir(cfg.out, version)),
        version=version,
        methods=[e.label for e in entries],
        seeds=[int(s) for s in cfg.seeds],
        datasets=datasets,
        budget_s=cfg.budget,
        overhead=str(cfg.overhead),
        jobs=int(cfg.jobs),
        executor=cfg.cluster,
        slurm=cfg.slurm,
        cache_dir=cfg.cache_dir if cfg.cache_dir is not None else str(Path(cfg.out) / "cache"),
        method_options=options,
        variants=variants,
        progress=cfg.progress,
    )


def plan_paper(cfg: PaperConfig) -> PaperPlan:
    """Every cell of the paper on ``cfg.store``, checked before any runs.

    Raises:
        StoreError: the store is missing or not a store.
        ValueError: an unknown version, experiment, cluster or method option; a bad budget or seed list.
        benchmark.registry.UnknownOptionError: an option a method does not take.
    """
    metadata_fields(cfg.store)  # StoreNotFoundError naming the path
    if cfg.search_space is not None:
        SearchSpace.load(cfg.search_space)  # FileNotFoundError naming the known spaces
    have = StoreReader(cfg.store).versions()
    versions = list(cfg.versions) if cfg.versions else have
    missing = [v for v in versions if v not in have]
    if missing or not versions:
        raise StoreError(f"store {cfg.store} has no version {missing or ''}; it has {have}")
    if cfg.cluster not in ("local", "slurm"):
        raise ValueError(f"cluster must be local or slurm, got {cfg.cluster!r}")
    if cfg.max_datasets is not None and cfg.max_datasets < 1:
        raise ValueError(f"max_datasets must be at least 1 (or null for all), got {cfg.max_datasets}")
    which = list(cfg.experiments) if cfg.experiments else list(EXPERIMENTS)
    experiments, runs, planned, todo, n_models = {}, {}, {}, {}, {}
    labels: set[str] = set()
    for version in versions:
        every = sorted(list_datasets(cfg.store, version))
        datasets = every[: cfg.max_datasets]
        tasks = load_tasks(cfg.store, version, datasets)
        exps = version_experiments(tasks, which, n_datasets=len(every), no_hpo_models=cfg.default_models)
        n_models[version] = len({m for t in tasks for m in t.view.models})
        entries = union_entries(exps)
        labels |= {e.label for e in entries}
        experiments[version] = exps
        runs[version] = run_config(cfg, version, datasets, entries)
    unknown = sorted(set(cfg.method_options) - set(METHODS) - labels)
    if unknown:
        raise ValueError(
            f"method_options for {unknown}, which is neither a registered method nor a label of the plan "
            f"({sorted(labels)})"
        )
    for version, run in runs.items():
        jobs, _ = plan(run)  # checks methods, options, budget, overhead; lists the cells
        planned[version] = len(jobs)
        todo[version] = sum(not j.path.is_file() for j in jobs)
    history = []
    if (Path(cfg.out) / MANIFEST).is_file():
        try:
            history = list(read_manifest(cfg.out).get("history", []))
        except ValueError:
            history = []  # a damaged paper.json: rewritten below, its history lost
    return PaperPlan(cfg, experiments, runs, planned, todo, n_models, history=history)


def manifest(p: PaperPlan) -> dict[str, Any]:
    """``paper.json``: the plan, the budgets and what each run did."""
    cfg = p.config
    meta = metadata_fields(cfg.store)
    versions: dict[str, Any] = {}
    for v, run in p.runs.items():
        versions[v] = {
            "results": str(Path(RUNS) / v),
            "datasets": list(run.datasets or []),
            "planned_cells": p.planned[v],
            "n_models": p.n_models[v],
            "budget_s": p.runs[v].budget_s if p.runs[v].budget_s is not None else default_budget(v),
            "experiments": {
                e.key: {
                    "labels": e.labels,
                    "entries": {x.label: {"method": x.method, "options": dict(x.options)} for x in e.entries},
                    "skipped": dict(e.skipped),
                }
                for e in p.experiments[v]
            },
        }
    return {
        "store": str(Path(cfg.store).resolve()),
        "store_name": meta.get("name"),
        "synthetic": bool(meta.get("synthetic")),
        "seeds": [int(s) for s in cfg.seeds],
        "budget": cfg.budget,
        "overhead": str(cfg.overhead),
        "cluster": cfg.cluster,
        "jobs": int(cfg.jobs),
        "max_datasets": cfg.max_datasets,
        "search_space": cfg.search_space,
        "method_options": {k: dict(v) for k, v in cfg.method_options.items()},
        "versions": versions,
        "history": p.history,
    }


def write_manifest(p: PaperPlan) -> Path:
    """Writes ``OUT/paper.json`` atomically."""
    path = Path(p.config.out) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{MANIFEST}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(manifest(p), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def run_paper(cfg: PaperConfig, log: Any = print) -> tuple[PaperPlan, list[Path]]:
    """Plans everything, replays the cells without a file, writes every output; returns the plan (with each
    version's :class:`RunSummary`) and the written files."""
    t0 = time.perf_counter()
    p = plan_paper(cfg)
    total, todo = sum(p.planned.values()), sum(p.todo.values())
    log(f"planned {total} cells over {len(p.runs)} versions; {todo} to replay, {total - todo} already done")
    for e in (e for exps in p.experiments.values() for e in exps):
        for label, reason in e.skipped:
            log(f"  {e.version} {e.key}: {label} skipped: {reason}")
    write_manifest(p)
    for version, run in p.runs.items():
        s = p.summaries[version] = run_benchmark(run)
        log(f"{version}: {s}")
        p.history.append({"version": version, "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
                          "replayed": s.done, "already_done": s.skipped, "failed": len(s.failed),
                          "wall_s": round(s.wall_s, 1)})  # fmt: skip
        write_manifest(p)
    written = write_outputs(cfg.out, formats=cfg.formats, dpi=cfg.dpi)
    log(f"wrote {len(written)} files to {Path(cfg.out).resolve()} in {time.perf_counter() - t0:.1f} s (index.md)")
    return p, written
