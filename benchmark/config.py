"""Structured configs of the benchmark's command lines: ``python -m benchmark.run`` (:class:`RunConfig`, registered
with Hydra's ConfigStore as ``benchmark_schema``) and ``python -m benchmark.figures`` (:class:`FiguresConfig`,
registered as ``figures``) and ``python -m benchmark.paper`` (:class:`PaperConfig`, registered as ``paper``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from metagen.hydra_settings import quiet_defaults, quiet_hydra
from metagen.slurm import SlurmSettings


@dataclass
class SlurmConfig(SlurmSettings):
    """Where ``executor=slurm`` sends the cells: one job array.

    The fields shared with the sweep's ``cluster=slurm`` (partition, account, qos, constraint, CPUs per task,
    which are also its ``OMP_NUM_THREADS``, memory, array parallelism, setup, sbatch extras, job name):
    :class:`metagen.slurm.SlurmSettings`. Its own:

    Attributes:
        cells_per_job: cells one array task replays one after the other.
        time_min_per_cell: minutes of job time per cell (``--time`` = cells_per_job x this).
        job_name: ``--job-name``.
        folder: submitit's logs (``null`` = ``<out>/_slurm``).
    """

    cells_per_job: int = 20
    time_min_per_cell: float = 5.0
    job_name: str | None = "benchmark-run"
    folder: str | None = None


@dataclass
class RunConfig:
    """One benchmark run: methods x datasets x seeds of one version of a store.

    Attributes:
        store: learning-curve store to replay.
        out: RESULTS directory (cells already there are skipped).
        version: meta-dataset version (``micro`` | ``mini`` | ``extended`` or the store's own).
        methods: registered method names (``benchmark.registry.METHODS``) or names of ``variants``.
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
        variants: labelled method variants by name, each a registered ``method`` plus ``options``, e.g.
            ``{quicktune@hub5: {method: quicktune, options: {hub_size: 5}}}`` (command line:
            ``+variants.NAME.method=M +variants.NAME.options.OPTION=VALUE``); list a name in ``methods`` to run it,
            stored and plotted under that name. Several variants of one method coexist in one RESULTS directory.
        progress: show a progress bar.
        lockstep: replay the seeds of a (method, dataset) together in one process, their GP fits run as one
            batched fit (``surrogates.batched``); the same trajectories up to the fits' floating-point rounding
            (docs/quicktune-deviations.md). Not with ``overhead=measured`` (cells then run alone). Off by default:
            in float32 a cell's trajectory then depends on which cells share its batches, so a resumed or
            re-sliced job would not reproduce the cells of an uninterrupted one; turn it on for throughput.
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
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    progress: bool = True
    lockstep: bool = False


@dataclass
class FiguresConfig:
    """What to plot from which RESULTS directory, and where to put it."""

    results: str = MISSING  # RESULTS directory written by `python -m benchmark.run`
    out: str = MISSING  # where figures and tables go (created)
    extra_results: list[str] = field(default_factory=list)  # more RESULTS directories to compare (e.g. a peer's)
    fractions: list[float] = field(default_factory=lambda: [0.1, 0.5, 1.0])  # budget fractions: tables, CD diagrams
    grid: str = "log"  # time grid of the over-time figures: log | linear | second (the paper's 1-s grid)
    grid_points: int = 256  # points of the log and linear grids
    alpha: float = 0.05  # significance level of the Friedman / Nemenyi tests
    formats: list[str] = field(default_factory=lambda: ["png", "pdf"])
    dpi: int = 150  # resolution of raster formats
    # Hydra itself: no output folder, no log files, no change of directory.
    defaults: list[Any] = field(default_factory=quiet_defaults)
    hydra: Any = field(default_factory=quiet_hydra)


@dataclass
class PaperConfig:
    """``python -m benchmark.paper``: every experiment of the paper on one store, then its figures and tables.

    Attributes:
        store: learning-curve store to replay.
        out: output folder: ``runs/<version>/`` (one RESULTS directory per version, resumable), the figures,
            the tables and ``index.md``.
        versions: versions of the store to run (``null`` = every version the store has).
        seeds: optimizer seeds (the paper: one run per method and dataset).
        budget: simulated seconds per replay (``null`` = each version's default: micro 3600, mini 14400,
            extended 57600 s, as the paper's run scripts; the bundled store's offline64 600 s).
        max_datasets: use only the first this many datasets (sorted) of each version (``null`` = all).
        overhead: optimizer overhead charged to the simulated clock (``measured`` = the paper's setting:
            the optimizer's own wall time counts; ``none`` | ``measured`` | seconds per step).
        experiments: which of the paper's experiments to run (``null`` = all: fig3, fig4, fig5, fig6, no_hpo).
        default_models: Table 2's single models with default hyperparameters, stored as ``default-<model>``
            (``null`` = the paper's BEiT, XCiT and DLA, each left out where the store has no run of it; a store
            with another hub names its own, e.g. ``[efficientnet_lite0,efficientnet_lite2,edgenext_x_small]`` for
            the bundled store; a model named here without runs in the store is refused before any cell runs).
        cluster: ``local`` (``jobs`` processes here) or ``slurm`` (a job array per version, see ``slurm``).
        jobs: local processes replaying cells in parallel (``jobs=1`` keeps measured overhead clean).
        slurm: the job array of ``cluster=slurm``.
        cache_dir: where Quick-Tune caches meta-trained models (``null`` = ``<out>/cache``).
        method_options: option overrides per registered method or per label, e.g.
            ``{quicktune: {schedule: {initial_epochs: 100}}}`` (checked before any cell runs).
        search_space: the store's search space, whose model metadata (parameters, ImageNet top-1) Fig. 2 plots
            (``null`` = for each model the first space of ``conf/search_spaces`` that has it, ``v1`` first; give
            ``hub6`` for the bundled store, whose models pretrained here on Fashion-MNIST and glyphs have no
            ImageNet top-1).
        formats: figure file formats.
        dpi: resolution of raster figures.
        progress: show progress bars and a line per cell.
    """

    store: str = MISSING
    out: str = MISSING
    versions: list[str] | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    budget: float | None = None
    max_datasets: int | None = None
    overhead: str = "measured"
    experiments: list[str] | None = None
    default_models: list[str] | None = None
    cluster: str = "local"
    jobs: int = 1
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    cache_dir: str | None = None
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    search_space: str | None = None
    formats: list[str] = field(default_factory=lambda: ["png"])
    dpi: int = 110
    progress: bool = True
    # Hydra itself: no output folder, no log files, no change of directory.
    defaults: list[Any] = field(default_factory=quiet_defaults)
    hydra: Any = field(default_factory=quiet_hydra)


def register_configs() -> None:
    """Registers :class:`RunConfig` as ``benchmark_schema`` (``conf/benchmark/run.yaml`` extends it),
    :class:`FiguresConfig` as ``figures`` and :class:`PaperConfig` as ``paper``."""
    cs = ConfigStore.instance()
    cs.store(name="benchmark_schema", node=RunConfig)
    cs.store(name="figures", node=FiguresConfig)
    cs.store(name="paper", node=PaperConfig)
