"""Structured config of ``python -m benchmark.run`` (registered with Hydra's ConfigStore as ``benchmark_schema``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class SlurmConfig:
    """Where ``executor=slurm`` sends the cells: one job array (field names as in the sweep's cluster config).

    Attributes:
        partition: SLURM partition (``null`` = the cluster's default).
        account: ``--account`` (``null`` = none).
        qos: ``--qos`` (``null`` = none).
        cells_per_job: cells one array task replays one after the other.
        time_min_per_cell: minutes of job time per cell (``--time`` = cells_per_job x this).
        cpus_per_task: CPUs per task (also its ``OMP_NUM_THREADS``).
        mem_gb: memory per task.
        array_parallelism: array tasks running at once.
        setup: shell lines run before the task (``module load ...``, ``source venv/bin/activate``).
        additional_parameters: other sbatch options, e.g. ``{constraint: cpu}``.
        job_name: ``--job-name``.
        folder: submitit's logs (``null`` = ``<out>/_slurm``).
    """

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    cells_per_job: int = 20
    time_min_per_cell: float = 5.0
    cpus_per_task: int = 1
    mem_gb: float = 4.0
    array_parallelism: int = 64
    setup: list[str] = field(default_factory=list)
    additional_parameters: dict[str, Any] = field(default_factory=dict)
    job_name: str = "benchmark-run"
    folder: str | None = None


@dataclass
class RunConfig:
    """One benchmark run: methods x datasets x seeds of one version of a store.

    Attributes:
        store: learning-curve store to replay.
        out: RESULTS directory (cells already there are skipped).
        version: meta-dataset version (``micro`` | ``mini`` | ``extended`` or the store's own).
        methods: registered method names (``benchmark.registry.METHODS``).
        seeds: optimizer seeds.
        datasets: datasets of the version to use (``null`` = all).
        budget_s: simulated seconds per replay (``null`` = the version's default: 3600/14400/57600).
        workers: simulated parallel workers per replay.
        overhead: optimizer overhead charged to the simulated clock: ``none`` | ``measured`` | seconds per step.
        jobs: local processes replaying cells in parallel (``executor=local``).
        executor: ``local`` (``jobs`` processes here) or ``slurm`` (a job array, see ``slurm``).
        slurm: the job array of ``executor=slurm``.
        folds: dataset-level folds for meta-learning methods (the task's fold is held out).
        context_seed: seed of the fold assignment (42 as in the reference).
        cache_dir: where meta-learning methods may cache meta-trained models (``null`` = no cache).
        method_options: per-method option overrides, e.g. ``{default_model: {model: dla46x_c}}``.
        progress: show a progress bar.
    """

    store: str = MISSING
    out: str = MISSING
    version: str = "micro"
    methods: list[str] = field(default_factory=lambda: ["random_search", "hyperband", "asha", "bohb"])
    seeds: list[int] = field(default_factory=lambda: [0])
    datasets: list[str] | None = None
    budget_s: float | None = None
    workers: int = 1
    overhead: str = "none"
    jobs: int = 1
    executor: str = "local"
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    folds: int = 5
    context_seed: int = 42
    cache_dir: str | None = None
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    progress: bool = True


def register_configs() -> None:
    """Registers :class:`RunConfig` as ``benchmark_schema`` (``conf/benchmark/run.yaml`` extends it)."""
    ConfigStore.instance().store(name="benchmark_schema", node=RunConfig)
