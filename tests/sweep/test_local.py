"""End to end on this machine, without SLURM: real finetuning of tiny runs through the local cluster.

The same three scenarios as the SLURM tests: a small sweep (submitit local jobs, then a relaunch in
this process), a preempted job that is requeued and ends with the curve of an uninterrupted run,
and a job killed hard whose run a relaunch finishes without duplicates or corrupt files.
"""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from metagen.store import StoreMetadata, create_store
from metagen.sweep.config import LocalClusterConfig, SweepConfig
from metagen.sweep.job import RunSettings, add_requeue, read_requeues, run_one
from metagen.sweep.launch import launch, prepare
from metagen.sweep.status import collect_status, find_plan
from tests.sweep.conftest import tiny_config
from tests.sweep.sweep_checks import assert_clean_store, curve_of, has_checkpoint, job_pids, stored_runs, wait_until


@pytest.mark.slow
def test_local_jobs_then_relaunch_in_process(tmp_path: Path, tiny_data: Path) -> None:
    cfg = tiny_config(tmp_path, tiny_data, cluster=LocalClusterConfig(processes=2))
    report = launch(cfg, progress=False)
    assert len(report.job_ids) == 2 and report.errors == []
    assert [o.status for o in report.outcomes] == ["ok"] * 6
    planned = {r.run_id for r in report.prepared.plan.runs}
    assert_clean_store(Path(cfg.store), planned, epochs=2)

    again = launch(replace(cfg, cluster=LocalClusterConfig(processes=1)), progress=False)
    assert again.prepared.plan.todo == () and again.outcomes == [] and again.job_ids == []

    more = launch(replace(cfg, pipelines_per_dataset=4, cluster=LocalClusterConfig()), progress=False)
    assert len(more.prepared.plan.complete) == 6 and [o.status for o in more.outcomes] == ["ok", "ok"]
    all_ids = {r.run_id for r in more.prepared.plan.runs}
    assert planned < all_ids
    assert_clean_store(Path(cfg.store), all_ids, epochs=2)
    s = collect_status(cfg.store, find_plan(cfg.store))
    assert (s.planned, s.done, s.epochs) == (8, 8, 16) and s.compute_s > 0


def one_run(tmp_path: Path, tiny_data: Path, **kw: Any) -> SweepConfig:
    return tiny_config(tmp_path, tiny_data, datasets=[str(tiny_data / "shapes_a")], pipelines_per_dataset=1,
                       epochs=10, **kw)  # fmt: skip


@pytest.mark.slow
def test_preempted_local_job_is_requeued_and_matches_an_uninterrupted_run(tmp_path: Path, tiny_data: Path) -> None:
    ref = launch(one_run(tmp_path / "ref", tiny_data), progress=False)
    (run_id,) = [o.run_id for o in ref.outcomes]

    cfg = one_run(tmp_path / "pre", tiny_data, cluster=LocalClusterConfig(use_submitit=True, wait=False))
    report = launch(cfg, progress=False)
    (job,) = report.jobs
    ckpt = cfg.checkpoint_path()
    wait_until(lambda: has_checkpoint(ckpt, run_id), 120, "the first epoch checkpoint")
    assert report.folder is not None
    (task,) = job_pids(report.folder)
    os.kill(task, signal.SIGUSR2)  # what SLURM sends before preempting or at the time limit
    (outcome,) = job.result()
    assert outcome["status"] == "ok" and outcome["resumed_from_epoch"] >= 1
    assert read_requeues(ckpt, run_id) == 1
    assert_clean_store(Path(cfg.store), {run_id}, epochs=10)
    assert curve_of(Path(cfg.store), run_id).equals(curve_of(Path(ref.prepared.settings.store), run_id))


def test_killed_local_job_is_finished_by_a_relaunch(tmp_path: Path, tiny_data: Path) -> None:
    cfg = one_run(tmp_path, tiny_data, cluster=LocalClusterConfig(use_submitit=True, wait=False))
    report = launch(cfg, progress=False)
    (job,) = report.jobs
    (run_id,) = [r.run_id for r in report.prepared.plan.todo]
    wait_until(lambda: has_checkpoint(cfg.checkpoint_path(), run_id), 120, "the first epoch checkpoint")
    assert report.folder is not None
    (task,) = job_pids(report.folder)
    os.kill(task, signal.SIGKILL)  # no signal handler runs: no checkpoint() call, no requeue
    job._results_timeout_s = 1  # submitit waits 15 s for the result file of a job that ended without one
    with pytest.raises(Exception):  # noqa: B017 - submitit raises a job-failure error of its own
        job.result()
    assert stored_runs(Path(cfg.store)).height == 0  # nothing half-written

    again = launch(replace(cfg, cluster=LocalClusterConfig()), progress=False)
    (outcome,) = again.outcomes
    assert outcome.status == "ok" and (outcome.resumed_from_epoch or 0) >= 1 and outcome.wrote_store
    assert_clean_store(Path(cfg.store), {run_id}, epochs=10)
    assert read_requeues(cfg.checkpoint_path(), run_id) == 0


def test_a_run_interrupted_too_often_is_stored_as_timeout_with_its_curve(tmp_path: Path, tiny_data: Path) -> None:
    from metagen.finetune import Interrupted

    cfg = one_run(tmp_path, tiny_data, max_requeues=1)
    (spec,) = prepare(cfg).plan.todo
    settings = RunSettings.from_config(cfg)
    create_store(cfg.store, StoreMetadata(name="t"))
    ckpt = cfg.checkpoint_path()
    with pytest.raises(Interrupted):  # stops after the epoch whose checkpoint appears first
        run_one(spec, settings, should_stop=lambda: has_checkpoint(ckpt, spec.run_id))
    for _ in range(2):  # one more than max_requeues
        add_requeue(ckpt, spec.run_id)
    outcome = run_one(spec, settings)
    assert outcome.status == "timeout" and outcome.resumed_from_epoch is not None
    assert outcome.n_epochs == (outcome.resumed_from_epoch or 0) >= 1  # the curve so far, nothing trained after
    runs = stored_runs(Path(cfg.store))
    assert runs["status"].to_list() == ["timeout"] and runs["n_epochs"].to_list() == [outcome.n_epochs]
