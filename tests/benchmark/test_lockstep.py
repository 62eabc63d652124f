"""Replays in lockstep: GP fits batched across cells, the same trajectories as alone, deterministic."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from benchmark.cells import CellJob, lockstep_groups, run_cell, run_lockstep
from benchmark.replay import Trajectory, replay, trajectories_equal
from benchmark.task import load_tasks

pytest.importorskip("torch")

from benchmark.methods.dyhpo import DyHPO
from surrogates.batched import FitBatcher

BUDGET_S = 2000.0
SHORT = {"schedule": {"initial_epochs": 30, "refine_epochs": 5}}  # few Adam steps: rounding cannot flip choices


def _jobs(store: Path, out: Path, method: str, seeds: list[int], options: dict) -> list[CellJob]:
    return [CellJob(str(store), "micro", method, options, "A", s, BUDGET_S, "none", 1, str(out), progress_every_s=0.0)
            for s in seeds]  # fmt: skip


def _rows(job: CellJob) -> pl.DataFrame:
    return pl.read_parquet(job.path).select("step", "time", "pipeline", "epoch", "value")


@pytest.mark.slow
def test_replays_in_lockstep_equal_the_replays_alone_in_float64(bench_store: Path) -> None:
    """The batcher's rounds, padding (the seeds observe different numbers of epochs), members leaving
    when their replay ends and BatchNorm statistics per member give each replay its unbatched result."""
    (task,) = load_tasks(str(bench_store), "micro", ["A"])
    schedule = {"initial_epochs": 40, "refine_epochs": 5, "dtype": "float64"}
    seeds = [0, 1, 2]
    alone = [replay(task, DyHPO(task.view, s, schedule=schedule), BUDGET_S) for s in seeds]
    batcher = FitBatcher(len(seeds))
    together: dict[int, Trajectory] = {}

    def work(seed: int) -> None:
        with batcher.member():
            together[seed] = replay(task, DyHPO(task.view, seed, schedule=schedule), BUDGET_S)

    threads = [threading.Thread(target=work, args=(s,)) for s in seeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert batcher.fits > 3 * 10 and batcher.rounds < batcher.fits  # fits really were batched
    for s, a in zip(seeds, alone, strict=True):
        assert trajectories_equal(together[s], a), f"seed {s}"
    assert len({a.time.size for a in alone}) > 1  # different observation counts: padded batches


def test_float32_lockstep_cells_run_and_write_their_files(bench_store: Path, tmp_path: Path) -> None:
    """In float32 a 1000-step fit on a few points amplifies rounding (fused and autograd fits differ alike,
    ``tests/surrogates/test_fused.py``), so a lockstep cell may pick another candidate than alone after some
    steps: only its files and the plausibility of its result are checked here."""
    jobs = _jobs(bench_store, tmp_path / "lockstep", "dyhpo", [0, 1, 2], SHORT)
    outcomes = run_lockstep(jobs)
    assert [o.error for o in outcomes] == [None] * 3
    alone = run_cell(_jobs(bench_store, tmp_path / "alone", "dyhpo", [0], SHORT)[0])
    assert all(len(_rows(j)) >= 20 for j in jobs) and abs(outcomes[0].rows - alone.rows) <= 5
    first = _rows(jobs[0]).head(3)  # the first fit (2 points, 30 steps) agrees
    assert first.equals(pl.read_parquet(alone.job.path).select(first.columns).head(3))


def test_lockstep_is_deterministic_and_groups_gp_cells_by_dataset(bench_store: Path, tmp_path: Path) -> None:
    first = _jobs(bench_store, tmp_path / "one", "dyhpo", [0, 1], SHORT)
    second = _jobs(bench_store, tmp_path / "two", "dyhpo", [0, 1], SHORT)
    for jobs in (first, second):
        assert [o.error for o in run_lockstep(jobs)] == [None, None]
    for a, b in zip(first, second, strict=True):
        assert _rows(a).equals(_rows(b))
        assert np.isfinite(_rows(a)["value"].to_numpy()).any()
    rs = _jobs(bench_store, tmp_path, "random_search", [0, 1], {})
    groups = lockstep_groups(first + rs + _jobs(bench_store, tmp_path, "quicktune-M", [0], {}))
    assert [[(j.method, j.seed) for j in g] for g in groups] == [
        [("dyhpo", 0), ("dyhpo", 1), ("quicktune-M", 0)],
        [("random_search", 0)],
        [("random_search", 1)],
    ]
