"""The sweep's configuration: Hydra structured configs (dataclasses registered with the ConfigStore).

``python -m metagen.sweep`` composes ``conf/sweep.yaml`` with one ``conf/cluster/<name>.yaml``
(``local``, ``slurm`` or a copy of ``example_cluster``) and the command-line overrides; the schemas
below make Hydra reject unknown keys and wrong types. Values are checked by
:func:`metagen.sweep.checks.check_config` before anything is planned or submitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from metagen.finetune.config import TrainingSettings
from metagen.slurm import SlurmSettings
from metagen.versions import META_ALBUM, VERSIONS, register_resolver
from metagen.versions import cap_s as version_cap_s


def _time_min_per_run() -> dict[str, int]:
    """SLURM minutes per run of each Meta-Album version (the version table's cap plus 15 minutes)."""
    return {name: VERSIONS[name].time_min_per_run for name in META_ALBUM}


@dataclass
class HubConfig:
    """Which models of the search space the sweep samples from."""

    # search space name under conf/search_spaces (or a YAML path)
    search_space: str = "v1"
    # only these models (timm names or the paper's aliases); null = every model of the space
    models: list[str] | None = None
    # only models with at most this many million parameters; null = no limit
    max_params_m: float | None = None


@dataclass
class LocalClusterConfig:
    """Run the sweep on this machine: in this process, or as submitit local jobs."""

    # which backend this is (do not change)
    kind: str = "local"
    # 1 = run every run in this process, one after the other; N > 1 = N submitit local jobs in parallel
    processes: int = 1
    # run even processes=1 as a submitit local job (separate process, requeue on USR2, logs in the sweep dir)
    use_submitit: bool = False
    # wall-clock limit of one submitit local job in minutes; on reaching it the job is checkpointed and requeued
    timeout_min: int = 7 * 24 * 60
    # wait for submitit local jobs with a progress bar (false: return after submitting)
    wait: bool = True


@dataclass
class SlurmClusterConfig(SlurmSettings):
    """Run the sweep as a SLURM job array through submitit.

    The fields shared with ``benchmark.run executor=slurm`` (partition, account, qos, constraint, CPUs,
    memory, array parallelism, setup, sbatch extras, job name) and their meaning: :class:`metagen.slurm.SlurmSettings`.
    ``job_name`` null = ``metagen-<sweep name>`` (used to find the sweep's jobs in squeue).
    """

    # which backend this is (do not change)
    kind: str = "slurm"
    # GPUs per job (0 = CPU-only jobs)
    gpus_per_node: int = 1
    # CPU cores per job (data loading + the training process)
    cpus_per_task: int = 8
    # memory per job in GB
    mem_gb: float = 32.0
    # runs executed one after the other by one array task
    runs_per_job: int = 1
    # minutes of job time per run, by dataset version; the job's --time is runs_per_job times this
    time_min_per_run: dict[str, int] = field(default_factory=_time_min_per_run)
    # minutes per run for versions not listed above; null = the run's cap_s in minutes plus 15
    default_time_min_per_run: int | None = None
    # seconds before the time limit at which SLURM sends USR2 (the job checkpoints and requeues itself)
    signal_delay_s: int = 120
    # check the request against `sinfo` before submitting (partition exists, GPUs/CPUs/memory/time fit)
    check_resources: bool = True
    # wait for the jobs with a progress bar (false: return after submitting)
    wait: bool = False


@dataclass
class SweepConfig(TrainingSettings):
    """A sweep: finetune N sampled pipelines on each dataset of a version and record their curves in a store.

    The settings every run of the sweep shares with ``python -m metagen.finetune`` (store, which is created
    if missing, version, epochs, schedule_epochs, seed, which also seeds the pipeline sampling, pretrained,
    hub_dir, img_size, the train recipe crop_scale_min / hflip / color_jitter, device, clock, deterministic,
    num_workers, num_threads) and their meaning:
    :class:`metagen.finetune.config.TrainingSettings`. The sweep's own fields follow.
    """

    # sweep name: names the sweep directory and the jobs
    name: str = "sweep"
    # Meta-Album dataset folders, or suite folders whose subfolders are datasets
    datasets: list[str] = MISSING
    # pipelines (model + hyperparameters) sampled per dataset, all different
    pipelines_per_dataset: int = 10
    # also train every hub model's default pipeline (the search space's declared `default:` values: timm's train.py
    # defaults on its grid) on every dataset, besides the sampled ones: the no-HPO baselines' exact candidates
    include_defaults: bool = False
    # models to sample from
    hub: HubConfig = field(default_factory=HubConfig)
    # wall-clock cap per run in seconds; null = the version's (metagen/versions.py: micro 1 h, mini 4 h, extended 16 h)
    cap_s: float | None = None
    # keep a run's epoch checkpoints after it is in the store (they are large; false deletes them)
    keep_checkpoints: bool = False
    # sweep directory (plan, job logs, checkpoints, failures); null = <store>.sweeps/<name>
    sweep_dir: str | None = None
    # epoch checkpoints of unfinished runs; null = <sweep_dir>/checkpoints
    checkpoint_dir: str | None = None
    # preemptions/timeouts one run may take; after that it is recorded as status timeout with its curve so far
    max_requeues: int = 3
    # submit even if jobs of this sweep are still queued or running (they could run the same runs twice)
    force: bool = False
    # plan and print, submit nothing
    dry_run: bool = False
    # where and how the runs execute: cluster=local | cluster=slurm | your own conf/cluster/<name>.yaml
    cluster: Any = MISSING

    def sweep_path(self) -> Path:
        """The sweep directory."""
        if self.sweep_dir:
            return Path(self.sweep_dir).expanduser().resolve()
        store = Path(self.store).expanduser().resolve()
        return store.parent / f"{store.name}.sweeps" / self.name

    def checkpoint_path(self) -> Path:
        """The directory of the runs' epoch checkpoints (``<run_id>/`` inside)."""
        if self.checkpoint_dir:
            return Path(self.checkpoint_dir).expanduser().resolve()
        return self.sweep_path() / "checkpoints"

    def run_cap_s(self) -> float | None:
        """The per-run cap in seconds: ``cap_s`` or the version's default (``None`` = no cap)."""
        if self.cap_s is not None:
            return float(self.cap_s)
        return version_cap_s(self.version)


def register_configs() -> None:
    """Register the schemas: ``sweep_schema`` and ``cluster/{local,slurm}_schema``."""
    from hydra.core.config_store import ConfigStore

    register_resolver()
    cs = ConfigStore.instance()
    cs.store(name="sweep_schema", node=SweepConfig)
    cs.store(group="cluster", name="local_schema", node=LocalClusterConfig)
    cs.store(group="cluster", name="slurm_schema", node=SlurmClusterConfig)


register_configs()
