"""The SLURM path of a session without a SLURM cluster: the refusal before training, and what a step's job
is submitted with (fake ``sbatch``/``squeue``/``scancel`` on the PATH record their calls)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from metagen.tune.config import TuneConfigError
from metagen.tune.session import prepare, slurm_job_name, step_spec
from metagen.tune.worker import run_step
from tests.tune.conftest import tune_config

pytest.importorskip("submitit")

FAKES = {
    "sbatch": 'cp "$1" "$LOG/job.sh"; echo "Submitted batch job 4242"',
    # one alive job until scancel ran
    "squeue": '[ -e "$LOG/cancelled" ] || echo 77; echo "$@" >> "$LOG/squeue.args"',
    "scancel": 'echo "$@" > "$LOG/cancelled"',
    "sinfo": "echo 'debug*|2|21000|(null)|infinite'",
    # submitit's SlurmExecutor refuses to start without an srun on the PATH (it never calls it here)
    "srun": 'echo "fake srun: not used" >&2; exit 1',
}


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on the PATH with fake SLURM commands; returns where they log."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    log.mkdir()
    for name, body in FAKES.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("LOG", str(log))
    return log


def test_cluster_slurm_without_slurm_is_refused_before_training(
    tmp_path: Path, new_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shutil.which", lambda name, *a, **k: None)
    with pytest.raises(TuneConfigError, match="cluster=slurm, but sbatch/sinfo/squeue/srun not on the PATH"):
        prepare(tune_config(tmp_path, new_dataset, cluster="slurm"))
    assert not (tmp_path / "out").exists() and not (tmp_path / "store.checkpoints").exists()


def test_a_machine_without_srun_is_refused_naming_it(
    tmp_path: Path, new_dataset: Path, fake_slurm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """submitit needs ``srun`` besides sbatch/sinfo/squeue: its absence is our refusal, not submitit's error."""
    bin_dir = fake_slurm.parent / "bin"
    (bin_dir / "srun").unlink()
    monkeypatch.setenv("PATH", str(bin_dir))  # hides a real srun of this machine
    with pytest.raises(TuneConfigError, match=r"cluster=slurm, but srun not on the PATH"):
        prepare(tune_config(tmp_path, new_dataset, cluster="slurm"))
    assert not (tmp_path / "out").exists()


def test_a_job_that_does_not_fit_the_partition_is_refused_before_training(
    tmp_path: Path, new_dataset: Path, fake_slurm: Path
) -> None:
    cases: list[
        tuple[dict[str, Any], str]
    ] = [  # the fake sinfo: partition debug (default), 2 CPUs, 21000 MB, no time limit
        ({"slurm_partition": "gpu"}, r"slurm_partition='gpu' is not a partition of this cluster: \['debug'\]"),
        ({"slurm_cpus": 8}, "slurm_cpus=8, but its nodes have at most 2 CPUs"),
    ]
    for override, message in cases:
        with pytest.raises(TuneConfigError, match=message):
            prepare(tune_config(tmp_path, new_dataset, cluster="slurm", **override))
    assert not (tmp_path / "out").exists() and not (tmp_path / "store.checkpoints").exists()
    prepare(tune_config(tmp_path, new_dataset, cluster="slurm", slurm_cpus=2))  # fits


def test_a_step_is_one_sbatch_job_and_a_killed_launchs_jobs_are_cancelled(
    tmp_path: Path, new_dataset: Path, fake_slurm: Path
) -> None:
    from metagen.tune.world import SlurmWorld

    p = prepare(tune_config(tmp_path, new_dataset, cluster="slurm", slurm_partition="debug", slurm_time_min=7))
    name = slurm_job_name(p)
    assert name.startswith("metagen-tune-SHT-") and name != slurm_job_name(p.__class__(**{**vars(p), "out": tmp_path}))
    world = SlurmWorld(tmp_path / "slurm", "debug", 7, 1, name)
    assert world.cancelled == ["77"] and (fake_slurm / "cancelled").read_text().split() == ["77"]
    assert f"-n {name}" in (fake_slurm / "squeue.args").read_text()
    spec = step_spec(p, 2, 1, str(tmp_path / "STOP"))
    job = world.step(spec)
    assert job.job_id == "4242"
    script = (fake_slurm / "job.sh").read_text()
    for flag in ("--partition=debug", "--time=7", "--cpus-per-task=1", f"--job-name={name}", "--mem=4096MB"):
        assert f"#SBATCH {flag}\n" in script
    assert "gpus" not in script  # no GRES request: clusters without GPUs reject any
    with open(tmp_path / "slurm" / "4242" / "4242_submitted.pkl", "rb") as f:
        submitted = pickle.load(f)
    assert submitted.function is run_step and submitted.args == (spec,)


class _FailedJob:
    job_id = "4243"

    def result(self) -> None:
        raise RuntimeError("Job 4243 (task: 0) with path ... has not produced any output (state: TIMEOUT)")


def test_a_failed_steps_job_is_told_with_its_checkpointed_epochs(
    tmp_path: Path, new_dataset: Path, fake_slurm: Path
) -> None:
    from metagen.tune.world import SlurmWorld

    p = prepare(tune_config(tmp_path, new_dataset, cluster="slurm"))
    world = SlurmWorld(tmp_path / "slurm", None, 7, 1, slurm_job_name(p))
    spec = step_spec(p, 1, 2, None)
    world.specs["4243"] = spec  # as step() records it
    out = world.result(_FailedJob())
    assert out.run_id == spec["run_id"] and out.epochs == [] and out.status is None  # nothing checkpointed yet
    assert out.error is not None and out.error.startswith("SLURM job 4243 failed:") and "TIMEOUT" in out.error
