"""End to end through a real SLURM scheduler (scripts/slurm/start.sh): job arrays, preemption, hard kills.

Run with ``.venv/bin/pytest -m slurm tests/sweep`` (root starts the local cluster if none answers).
Every test uses its own sweep directory, hence fresh submitit folders.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from metagen.sweep.config import SweepConfig
from metagen.sweep.errors import SweepConfigError
from metagen.sweep.job import read_requeues
from metagen.sweep.launch import launch, prepare
from tests.sweep.conftest import slurm_test_cluster, tiny_config
from tests.sweep.sweep_checks import assert_clean_store, curve_of, has_checkpoint, job_pids, stored_runs, wait_until

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster"), pytest.mark.timeout(600)]


def sacct_states(job_id: str) -> list[str]:
    """States of a job (and its array tasks) in the accounting database."""
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id.split("_")[0], "-o", "JobID,State"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return [line for line in out.stdout.splitlines() if line.strip()]


def test_small_sweep_runs_as_a_job_array(tmp_path: Path, tiny_data: Path) -> None:
    cfg = tiny_config(tmp_path, tiny_data, cluster=slurm_test_cluster(wait=True))
    report = launch(cfg, progress=False)
    assert len(report.job_ids) == 2 and all("_" in j for j in report.job_ids)  # one array, two tasks
    assert len({j.split("_")[0] for j in report.job_ids}) == 1
    assert report.errors == [] and [o.status for o in report.outcomes] == ["ok"] * 6
    assert_clean_store(Path(cfg.store), {r.run_id for r in report.prepared.plan.runs}, epochs=2)
    wait_until(lambda: all(s.endswith("|COMPLETED") for s in sacct_states(report.job_ids[0])), 60,
               "the array tasks to end as COMPLETED", poll_s=1.0)  # fmt: skip
    assert len(sacct_states(report.job_ids[0])) == 2
    plan = json.loads((cfg.sweep_path() / "plan.json").read_text())
    assert plan["launch"]["jobs"] == report.job_ids and len(plan["runs"]) == 6
    again = launch(cfg, progress=False)
    assert again.prepared.plan.todo == () and again.job_ids == []


def test_impossible_requests_are_refused_before_submitting(tmp_path: Path, tiny_data: Path) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"gpus_per_node": 1}, "at most 0 GPUs"),
        ({"cpus_per_task": 4096}, "CPUs"),
        ({"partition": "nope"}, "not a partition"),
    ]
    for bad, message in cases:
        with pytest.raises(SweepConfigError, match=message):
            prepare(tiny_config(tmp_path, tiny_data, cluster=slurm_test_cluster(**bad)))
    assert not (tmp_path / "store").exists()


def one_run(tmp_path: Path, tiny_data: Path, **kw: Any) -> SweepConfig:
    return tiny_config(tmp_path, tiny_data, datasets=[str(tiny_data / "shapes_a")], pipelines_per_dataset=1,
                       epochs=10, **kw)  # fmt: skip


def test_preempted_job_is_requeued_and_matches_an_uninterrupted_run(tmp_path: Path, tiny_data: Path) -> None:
    ref = launch(one_run(tmp_path / "ref", tiny_data), progress=False)  # uninterrupted, in this process
    (run_id,) = [o.run_id for o in ref.outcomes]

    cfg = one_run(tmp_path / "pre", tiny_data, cluster=slurm_test_cluster())
    report = launch(cfg, progress=False)
    (job,) = report.jobs
    wait_until(lambda: has_checkpoint(cfg.checkpoint_path(), run_id), 180, "the first epoch checkpoint")
    subprocess.run(["scancel", "--signal=USR2", job.job_id], check=True)  # preemption notice
    (outcome,) = job.result()
    assert outcome["status"] == "ok" and outcome["resumed_from_epoch"] >= 1, outcome
    assert read_requeues(cfg.checkpoint_path(), run_id) == 1
    assert_clean_store(Path(cfg.store), {run_id}, epochs=10)
    assert curve_of(Path(cfg.store), run_id).equals(curve_of(Path(ref.prepared.settings.store), run_id))


def test_killed_job_is_finished_by_a_relaunch(tmp_path: Path, tiny_data: Path) -> None:
    cfg = one_run(tmp_path, tiny_data, cluster=slurm_test_cluster())
    report = launch(cfg, progress=False)
    (job,) = report.jobs
    (run_id,) = [r.run_id for r in report.prepared.plan.todo]
    wait_until(lambda: has_checkpoint(cfg.checkpoint_path(), run_id), 180, "the first epoch checkpoint")
    # a hard kill (node failure, OOM killer): `scancel --signal=KILL` would be a normal cancel, whose SIGTERM
    # submitit ignores until SIGKILL comes KillWait (30 s) later; kill the job's python at once instead
    assert report.folder is not None
    (task,) = job_pids(report.folder)
    os.kill(task, signal.SIGKILL)
    job._results_timeout_s = 1  # submitit waits 15 s for the result file of a job that ended without one
    with pytest.raises(Exception):  # noqa: B017 - submitit raises its own "job failed/uncompleted" error
        job.result()
    assert stored_runs(Path(cfg.store)).height == 0  # nothing half-written

    again = launch(replace(cfg, cluster=slurm_test_cluster(wait=True)), progress=False)
    assert again.errors == []
    (outcome,) = again.outcomes
    assert outcome.status == "ok" and (outcome.resumed_from_epoch or 0) >= 1 and outcome.wrote_store, outcome
    assert_clean_store(Path(cfg.store), {run_id}, epochs=10)
