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

DEFAULT_CAP_S: dict[str, float] = {"micro": 3600.0, "mini": 14400.0, "extended": 57600.0}
"""Per-run wall-clock cap of each Meta-Album version when ``cap_s`` is not set (reference §2.4: 1 h / 4 h / 16 h)."""

DEFAULT_TIME_MIN_PER_RUN: dict[str, int] = {"micro": 75, "mini": 255, "extended": 975}
"""SLURM minutes granted per run of each version: the cap plus 15 minutes for loading, evaluation and writing."""


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
class SlurmClusterConfig:
    """Run the sweep as a SLURM job array through submitit."""

    # which backend this is (do not change)
    kind: str = "slurm"
    # partition to submit to; null = the cluster's default partition
    partition: str | None = None
    # GPUs per job (0 = CPU-only jobs)
    gpus_per_node: int = 1
    # CPU cores per job (data loading + the training process)
    cpus_per_task: int = 8
    # memory per job in GB
    mem_gb: float = 32.0
    # runs executed one after the other by one array task
    runs_per_job: int = 1
    # minutes of job time per run, by dataset version; the job's --time is runs_per_job times this
    time_min_per_run: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_TIME_MIN_PER_RUN))
    # minutes per run for versions not listed above; null = the run's cap_s in minutes plus 15
    default_time_min_per_run: int | None = None
    # at most this many array tasks run at the same time (%N of --array)
    array_parallelism: int = 64
    # seconds before the time limit at which SLURM sends USR2 (the job checkpoints and requeues itself)
    signal_delay_s: int = 120
    # account to charge (--account); null = your default
    account: str | None = None
    # quality of service (--qos); null = the partition's default
    qos: str | None = None
    # node features (--constraint), e.g. "a100|h100"
    constraint: str | None = None
    # job name; null = metagen-<sweep name> (used to find the sweep's jobs in squeue)
    job_name: str | None = None
    # shell lines run in the job before python starts (module load ..., export ...)
    setup: list[str] = field(default_factory=list)
    # any other sbatch option, e.g. {"mail-type": "FAIL", "exclude": "node[01-02]"}
    additional_parameters: dict[str, Any] = field(default_factory=dict)
    # check the request against `sinfo` before submitting (partition exists, GPUs/CPUs/memory/time fit)
    check_resources: bool = True
    # wait for the jobs with a progress bar (false: return after submitting)
    wait: bool = False


@dataclass
class SweepConfig:
    """A sweep: finetune N sampled pipelines on each dataset of a version and record their curves in a store."""

    # sweep name: names the sweep directory and the jobs
    name: str = "sweep"
    # learning-curve store the runs are written into (created if missing)
    store: str = MISSING
    # Meta-Album dataset folders, or suite folders whose subfolders are datasets
    datasets: list[str] = MISSING
    # dataset version the runs belong to (micro | mini | extended | any name); part of every run id
    version: str = "micro"
    # pipelines (model + hyperparameters) sampled per dataset, all different
    pipelines_per_dataset: int = 10
    # seed of the pipeline sampling and of every run
    seed: int = 0
    # models to sample from
    hub: HubConfig = field(default_factory=HubConfig)
    # epochs per run
    epochs: int = 50
    # LR-schedule length (the reference's 50); another value becomes part of the pipeline id
    schedule_epochs: int = 50
    # wall-clock cap per run in seconds; null = the version's default (micro 1 h, mini 4 h, extended 16 h)
    cap_s: float | None = None
    # pretrained weights: auto | hub | file | none (random init; part of the pipeline id)
    pretrained: str = "auto"
    # local hub folder of pretrained-weight cards (python -m metagen.hub); pretrained=auto uses the card of a
    # model's architecture when the Hugging Face hub has no weights for it; null = no local hub
    hub_dir: str | None = None
    # input resolution; null = each model's default; another value becomes part of the pipeline id
    img_size: int | None = None
    # train recipe: smallest RandomResizedCrop area; null = timm's ImageNet 0.08 raised to what the dataset tolerates
    crop_scale_min: float | None = None
    # train recipe: horizontal-flip probability; null = 0.5, or 0 for datasets that declare no flips
    hflip: float | None = None
    # train recipe: ColorJitter strength; null = 0.4 capped by the dataset's declaration
    color_jitter: float | None = None
    # auto | cpu | cuda | cuda:N
    device: str = "auto"
    # epoch times and the cap: wall (wall-clock seconds) | process (CPU seconds of the run; CPU, no loader workers)
    clock: str = "wall"
    # deterministic algorithms (bit-identical curves on CPU, also across resumes)
    deterministic: bool = False
    # data-loader worker processes per run
    num_workers: int = 0
    # torch threads on CPU; null = torch's default
    num_threads: int | None = None
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
        return DEFAULT_CAP_S.get(self.version)


def register_configs() -> None:
    """Register the schemas: ``sweep_schema`` and ``cluster/{local,slurm}_schema``."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="sweep_schema", node=SweepConfig)
    cs.store(group="cluster", name="local_schema", node=LocalClusterConfig)
    cs.store(group="cluster", name="slurm_schema", node=SlurmClusterConfig)


register_configs()
