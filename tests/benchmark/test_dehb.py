"""DEHB through the ``dehb`` library: the mapping onto candidates, fidelities, lookups, seeds, no side effects.

The library is an optional extra: these tests skip without it (``test_conformance`` checks the error without it).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from benchmark.methods.hyperband import hyperband_budgets
from benchmark.registry import make_optimizer
from benchmark.replay import replay, trajectories_equal
from benchmark.results import cell_path, read_cell_stats
from benchmark.runner import run_benchmark
from benchmark.task import Task, load_tasks
from tests.benchmark.test_run import config

pytest.importorskip("dehb")

from benchmark.methods.dehb_tabular import DEHB


@pytest.fixture(scope="module")
def task(bench_store: Path) -> Task:
    return load_tasks(bench_store, "micro", ["A"])[0]


def test_every_candidate_is_its_own_nearest_point_and_fidelities_are_hyperbands_epochs(task: Task) -> None:
    opt = DEHB(task.view, 0)
    x = task.view.features[:, np.ptp(task.view.features, axis=0) > 0]
    unique = np.unique(x, axis=0, return_index=True)[1]
    for i in unique:  # the candidate's own point of the unit cube maps back to it
        assert opt.nearest((x[i] - x.min(axis=0)) / np.ptp(x, axis=0)) == i
    assert tuple(sorted(set(opt.epoch_of.values()))) == hyperband_budgets(task.view.max_epochs, 1, 3)


def test_proposals_are_counted_known_ones_cost_nothing_and_seeds_reproduce(task: Task) -> None:
    opt = DEHB(task.view, 3)
    traj = replay(task, opt, float("inf"))
    stats = opt.stats()
    assert traj.stop == "exhausted" and stats["stopped_stuck"] == 0
    # with an unlimited budget every candidate ends up trained as far as it goes, most later proposals are known
    assert stats["distinct_candidates"] == task.n and 0 < stats["known_proposals"] < stats["mapped_proposals"]
    assert len(set(zip(traj.pipeline.tolist(), traj.epoch.tolist(), strict=True))) == traj.time.size
    again = replay(task, make_optimizer("dehb", task.view, 3), 2000.0)
    assert trajectories_equal(replay(task, make_optimizer("dehb", task.view, 3), 2000.0), again)
    other = replay(task, make_optimizer("dehb", task.view, 4), 2000.0)
    assert not trajectories_equal(other, again)


def test_dehb_needs_a_range_of_fidelities(task: Task) -> None:
    with pytest.raises(ValueError, match="DEHB needs max_epochs > min_budget"):
        make_optimizer("dehb", task.view, 0, min_budget=task.view.max_epochs)


def test_the_library_leaves_no_files_and_no_log_sinks(task: Task, tmp_path: Path, monkeypatch) -> None:
    from loguru import logger

    monkeypatch.chdir(tmp_path)
    replay(task, make_optimizer("dehb", task.view, 0), 1000.0, n_workers=2)
    assert os.listdir(tmp_path) == []
    assert not logger._core.handlers  # type: ignore[attr-defined]  # the library's sinks were removed


def test_dehb_counts_are_stored_with_each_replay(bench_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "res"
    assert run_benchmark(config(bench_store, out, methods=["dehb"], seeds=[0], datasets=["A"])).done == 1
    stats = read_cell_stats(cell_path(out, "micro", "dehb", "A", 0))
    assert set(stats) == {"mapped_proposals", "known_proposals", "distinct_candidates", "stopped_stuck"}
    assert stats["mapped_proposals"] >= stats["distinct_candidates"] > 0


def test_the_summary_says_how_many_proposals_were_known_candidates(bench_store: Path, tmp_path: Path) -> None:
    from benchmark.metrics import mapping_notes, proposal_notes
    from benchmark.results import load_results

    out = tmp_path / "res"
    run_benchmark(config(bench_store, out, methods=["dehb", "bohb"], seeds=[0, 1], datasets=["A", "B"]))
    stats = [read_cell_stats(cell_path(out, "micro", "dehb", d, s)) for d in "AB" for s in (0, 1)]
    (line,) = mapping_notes(load_results(out))
    mapped, known = (sum(st[k] for st in stats) for k in ("mapped_proposals", "known_proposals"))
    assert line.startswith(f"dehb (micro): {mapped} proposals mapped onto candidates over 4 replays")
    assert f"; {known} (" in line and line in proposal_notes(load_results(out))
