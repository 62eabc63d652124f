"""submitit executors of a sweep: SLURM job arrays and local jobs, with parameters derived from the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metagen.sweep.config import LocalClusterConfig, SlurmClusterConfig, SweepConfig
from metagen.sweep.errors import SweepConfigError
from metagen.versions import slurm_minutes


def job_name(cfg: SweepConfig) -> str:
    """The name of the sweep's jobs (``squeue -n``)."""
    c = cfg.cluster
    return (c.job_name if isinstance(c, SlurmClusterConfig) and c.job_name else None) or f"metagen-{cfg.name}"


def time_min_per_run(cfg: SweepConfig) -> int:
    """Minutes of SLURM job time granted per run of the sweep's version.

    Raises:
        SweepConfigError: the version has no configured time and the runs have no cap to derive it from.
    """
    c = cfg.cluster
    assert isinstance(c, SlurmClusterConfig)
    if cfg.version in c.time_min_per_run:
        return int(c.time_min_per_run[cfg.version])
    if c.default_time_min_per_run is not None:
        return int(c.default_time_min_per_run)
    cap = cfg.run_cap_s()
    if cap is None:
        raise SweepConfigError(
            f"version {cfg.version!r} has no cluster.time_min_per_run entry and the runs have no cap_s; "
            f"set cluster.time_min_per_run.{cfg.version}=MINUTES or cap_s=SECONDS"
        )
    return slurm_minutes(cap)


def job_time_min(cfg: SweepConfig, runs_in_job: int) -> int:
    """The ``--time`` of a job of ``runs_in_job`` runs."""
    return runs_in_job * time_min_per_run(cfg)


def max_num_timeout(cfg: SweepConfig, runs_in_job: int) -> int:
    """submitit's requeue budget of a job: enough for every run's ``max_requeues`` plus the final one each.

    The sweep bounds requeues per run itself (see :mod:`metagen.sweep.job`); submitit's own countdown
    must never stop a job earlier.
    """
    return runs_in_job * (cfg.max_requeues + 1) + 1


def slurm_parameters(cfg: SweepConfig, runs_in_job: int, partition: str | None) -> dict[str, Any]:
    """Keyword arguments of ``SlurmExecutor.update_parameters`` for the sweep's jobs."""
    c = cfg.cluster
    assert isinstance(c, SlurmClusterConfig)
    return c.sbatch(
        job_name=job_name(cfg),
        time_min=job_time_min(cfg, runs_in_job),
        partition=partition,
        gpus_per_node=c.gpus_per_node,
        signal_delay_s=c.signal_delay_s,
    )


def slurm_executor(cfg: SweepConfig, folder: Path, runs_in_job: int, partition: str | None) -> Any:
    """A ``submitit.SlurmExecutor`` writing into ``folder`` (one sub-folder per job)."""
    from submitit import SlurmExecutor

    ex = SlurmExecutor(folder=folder / "%j", max_num_timeout=max_num_timeout(cfg, runs_in_job))
    ex.update_parameters(**slurm_parameters(cfg, runs_in_job, partition))
    return ex


def local_executor(cfg: SweepConfig, folder: Path, runs_in_job: int, gpu: int | None) -> Any:
    """A ``submitit.LocalExecutor`` writing into ``folder`` (one sub-folder per job).

    Args:
        gpu: the GPU its jobs see (``CUDA_VISIBLE_DEVICES``); ``None`` = no GPU.
    """
    from submitit import LocalExecutor

    c = cfg.cluster
    assert isinstance(c, LocalClusterConfig)
    ex = LocalExecutor(folder=folder / "%j", max_num_timeout=max_num_timeout(cfg, runs_in_job))
    gpus: dict[str, Any] = {"gpus_per_node": 0} if gpu is None else {"gpus_per_node": 1, "visible_gpus": (gpu,)}
    ex.update_parameters(timeout_min=c.timeout_min, signal_delay_s=30, **gpus)
    return ex
