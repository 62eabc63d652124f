"""Progress of a sweep: ``python -m metagen.sweep.status STORE [--sweep NAME] [--follow]``.

Counts the runs of the store by status, the epochs done and the compute hours (sum of the stored
epochs' train + eval time). With a sweep plan (``<store>.sweeps/<name>/plan.json``, written at launch)
it also shows planned vs done per dataset and which planned runs are in progress (an epoch
checkpoint on disk), failed before training (a failure record) or still pending. ``--follow``
redraws a progress bar until every planned run is in the store. Imports neither torch nor timm.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import polars as pl

from metagen.exit_codes import BAD_INPUT, INTERRUPTED, OK
from metagen.store.errors import StoreError
from metagen.store.layout import read_metadata
from metagen.store.schema import STATUSES
from metagen.sweep.job import failure_path
from metagen.sweep.record import PlanRecord, find_plans

PROGRESS_KINDS = ("running", "failed", "pending")
"""States of planned runs not in the store: epoch checkpoint on disk / failure record / nothing yet."""


@dataclass
class DatasetStatus:
    """Counts of one dataset: planned runs (0 without a plan) and runs per state."""

    planned: int = 0
    counts: Counter = field(default_factory=Counter)


@dataclass
class SweepStatus:
    """A store's (or a sweep's) progress.

    Attributes:
        store: the store.
        plan: the sweep plan compared with, if any.
        datasets: per dataset name, its counts.
        epochs: epochs stored (of the runs counted).
        compute_s: seconds of train + eval time stored (of the runs counted).
    """

    store: Path
    plan: PlanRecord | None
    datasets: dict[str, DatasetStatus]
    epochs: int
    compute_s: float

    @property
    def totals(self) -> Counter:
        """Runs per state over all datasets."""
        out: Counter = Counter()
        for d in self.datasets.values():
            out.update(d.counts)
        return out

    @property
    def planned(self) -> int:
        """Runs planned (0 without a plan)."""
        return sum(d.planned for d in self.datasets.values())

    @property
    def done(self) -> int:
        """Runs in the store (any status)."""
        t = self.totals
        return sum(t[s] for s in STATUSES)


def _store_tables(store: Path, version: str | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    from metagen.store import StoreReader
    from metagen.store.layout import STORE_FILE

    if not (store / STORE_FILE).exists():
        empty = pl.DataFrame(schema={"run_id": pl.String, "dataset": pl.String, "status": pl.String,
                                     "n_epochs": pl.Int64})  # fmt: skip
        return empty, pl.DataFrame(schema={"run_id": pl.String, "cost": pl.Float64})
    reader = StoreReader(store, check=False)
    runs = reader.scan_runs(version).select("run_id", "dataset", "status", pl.col("n_epochs").cast(pl.Int64)).collect()
    cost = (
        reader.scan_curves(version)
        .group_by("run_id")
        .agg((pl.col("train_time").cast(pl.Float64) + pl.col("eval_time").cast(pl.Float64)).sum().alias("cost"))
        .collect()
    )
    return runs, cost


def _has_checkpoint(checkpoint_dir: Path, run_id: str) -> bool:
    d = checkpoint_dir / run_id
    return d.is_dir() and any(p for p in d.iterdir() if not p.name.startswith("."))


def collect_status(store: str | Path, plan: PlanRecord | None = None) -> SweepStatus:
    """The store's progress, restricted to (and compared with) the plan's runs if a plan is given."""
    store = Path(store).expanduser().resolve()
    runs, cost = _store_tables(store, plan.version if plan else None)
    datasets: dict[str, DatasetStatus] = {}
    if plan is None:
        for name, status in runs.select("dataset", "status").iter_rows():
            datasets.setdefault(name, DatasetStatus()).counts[status] += 1
        counted = runs
    else:
        planned_ids = {r.run_id for r in plan.runs}
        counted = runs.filter(pl.col("run_id").is_in(list(planned_ids)))
        stored = dict(counted.select("run_id", "status").iter_rows())
        ckpt = Path(plan.checkpoint_dir) if plan.checkpoint_dir else None
        for r in plan.runs:
            d = datasets.setdefault(r.dataset_name, DatasetStatus())
            d.planned += 1
            if r.run_id in stored:
                state = stored[r.run_id]
            elif ckpt is not None and _has_checkpoint(ckpt, r.run_id):
                state = "running"
            elif failure_path(plan.sweep_dir, r.run_id).exists():
                state = "failed"
            else:
                state = "pending"
            d.counts[state] += 1
    ids = counted["run_id"]
    epochs = int(counted["n_epochs"].sum() or 0)
    compute = float(cost.filter(pl.col("run_id").is_in(ids.to_list()))["cost"].sum() or 0.0)
    return SweepStatus(store, plan, dict(sorted(datasets.items())), epochs, compute)


def format_status(s: SweepStatus) -> str:
    """A table of runs per dataset and state, with totals, epochs and compute hours."""
    states = [k for k in (*STATUSES, *PROGRESS_KINDS) if any(d.counts[k] for d in s.datasets.values())]
    cols = (["planned"] if s.plan else []) + (["done"] if s.plan else []) + states
    width = max([len("dataset"), len("total"), *(len(n) for n in s.datasets)])
    head = f"{'dataset':<{width}}  " + "  ".join(f"{c:>8}" for c in cols)
    lines = []
    if s.plan:
        lines.append(
            f"sweep {s.plan.name!r} of store {s.store} (version {s.plan.version}, planned {s.plan.created_at})"
        )
    else:
        lines.append(f"store {s.store} (no sweep plan found: counting every run)")
    lines.append(head)

    def row(name: str, planned: int, counts: Counter) -> str:
        done = sum(counts[k] for k in STATUSES)
        vals = ([planned, done] if s.plan else []) + [counts[k] for k in states]
        return f"{name:<{width}}  " + "  ".join(f"{v:>8}" for v in vals)

    for name, d in s.datasets.items():
        lines.append(row(name, d.planned, d.counts))
    lines.append(row("total", s.planned, s.totals))
    hours = s.compute_s / 3600
    lines.append(f"epochs stored: {s.epochs}   compute: {hours:.3f} h (train + eval time of the stored epochs)")
    if s.plan and s.planned:
        lines.append(f"progress: {s.done}/{s.planned} runs ({100 * s.done / s.planned:.1f} %)")
    return "\n".join(lines)


def find_plan(store: str | Path, sweep: str | None = None, plan_path: str | None = None) -> PlanRecord | None:
    """The sweep plan to compare the store with: ``plan_path``, the sweep named ``sweep``, or the only one.

    Raises:
        ValueError: the named plan/sweep does not exist, or several sweeps exist and none was named.
    """
    if plan_path:
        return PlanRecord.read(plan_path)
    plans = find_plans(store)
    if sweep is not None:
        match = [p for p in plans if p.parent.name == sweep]
        if not match:
            raise ValueError(f"no sweep {sweep!r} of store {store}; sweeps: {[p.parent.name for p in plans]}")
        return PlanRecord.read(match[0])
    if len(plans) > 1:
        raise ValueError(f"store {store} has several sweeps {[p.parent.name for p in plans]}; pick one with --sweep")
    return PlanRecord.read(plans[0]) if plans else None


def follow(store: Path, plan: PlanRecord, interval_s: float, out: TextIO | None = None) -> SweepStatus:
    """Redraw a progress bar of planned runs in the store every ``interval_s`` until all are there."""
    from tqdm import tqdm

    s = collect_status(store, plan)
    with tqdm(total=s.planned, initial=s.done, unit="run", file=out or sys.stderr, desc=plan.name) as bar:
        while True:
            t = s.totals
            bar.set_postfix_str(" ".join(f"{k}={t[k]}" for k in (*STATUSES, *PROGRESS_KINDS) if t[k]))
            bar.update(s.done - bar.n)
            if s.done >= s.planned:
                return s
            time.sleep(interval_s)
            s = collect_status(store, plan)


def main(argv: list[str] | None = None) -> int:
    """``python -m metagen.sweep.status STORE [--sweep NAME | --plan PATH] [--follow [--interval S]]``."""
    ap = argparse.ArgumentParser(prog="python -m metagen.sweep.status", description=__doc__.split("\n\n")[0])
    ap.add_argument("store", help="the learning-curve store the sweep writes into")
    ap.add_argument("--sweep", help="sweep name (default: the only sweep of the store)")
    ap.add_argument("--plan", help="path of a plan.json (for a sweep_dir outside <store>.sweeps/)")
    ap.add_argument("--follow", action="store_true", help="show a progress bar until every planned run is stored")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between refreshes with --follow")
    args = ap.parse_args(argv)
    store = Path(args.store).expanduser().resolve()
    try:
        read_metadata(store)  # a missing store is an error, not an empty table
        plan = find_plan(store, args.sweep, args.plan)
        if args.follow:
            if plan is None:
                raise ValueError(f"--follow needs a sweep plan; none found under {store.name}.sweeps/")
            follow(store, plan, args.interval)
        print(format_status(collect_status(store, plan)))
    except (ValueError, OSError, StoreError) as e:
        print(f"error: {e}", file=sys.stderr)
        return BAD_INPUT
    except KeyboardInterrupt:
        return INTERRUPTED
    return OK


if __name__ == "__main__":
    sys.exit(main())
