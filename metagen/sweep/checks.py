"""Checks that make a bad sweep fail before anything is submitted, each with a message that says what to do."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from metagen.search_space import SearchSpace
from metagen.sweep.config import LocalClusterConfig, SlurmClusterConfig, SweepConfig
from metagen.sweep.errors import StoreNotWritableError, SweepConfigError
from metagen.sweep.slurm_info import PartitionInfo

PRETRAINED_CHOICES = ("auto", "hub", "file", "none")


def check_config(cfg: SweepConfig) -> None:
    """Values that are wrong whatever the machine: counts, budgets, resources, choices.

    Raises:
        SweepConfigError: listing every problem found, not just the first.
    """
    p: list[str] = []

    def positive(name: str, value: float | None, allow_none: bool = False) -> None:
        if value is None:
            if not allow_none:
                p.append(f"{name} must be set")
        elif value <= 0:
            p.append(f"{name}={value} must be positive")

    if not cfg.name or not all(c.isalnum() or c in "._-" for c in cfg.name):
        p.append(f"name={cfg.name!r} must be non-empty and use only letters, digits and . _ -")
    if not cfg.datasets:
        p.append("datasets is empty: give Meta-Album dataset folders or suite folders")
    positive("pipelines_per_dataset", cfg.pipelines_per_dataset)
    positive("epochs", cfg.epochs)
    positive("schedule_epochs", cfg.schedule_epochs)
    if cfg.epochs > cfg.schedule_epochs:
        p.append(f"epochs={cfg.epochs} exceeds schedule_epochs={cfg.schedule_epochs}; raise schedule_epochs too")
    positive("cap_s", cfg.cap_s, allow_none=True)
    if cfg.seed < 0:
        p.append(f"seed={cfg.seed} must be >= 0")
    if cfg.pretrained not in PRETRAINED_CHOICES:
        p.append(f"pretrained={cfg.pretrained!r} is not one of {list(PRETRAINED_CHOICES)}")
    if cfg.hub_dir is not None and not Path(cfg.hub_dir).expanduser().is_dir():
        p.append(f"hub_dir={cfg.hub_dir} is not a folder; give a local hub folder of cards (metagen.hub) or null")
    if cfg.img_size is not None and cfg.img_size < 8:
        p.append(f"img_size={cfg.img_size} is too small (at least 8 pixels, or null for each model's default)")
    if not (cfg.device in ("auto", "cpu", "cuda") or cfg.device.startswith("cuda:")):
        p.append(f"device={cfg.device!r} is not one of auto, cpu, cuda, cuda:N")
    if cfg.num_workers < 0:
        p.append(f"num_workers={cfg.num_workers} must be >= 0")
    positive("num_threads", cfg.num_threads, allow_none=True)
    if cfg.max_requeues < 0:
        p.append(f"max_requeues={cfg.max_requeues} must be >= 0")
    positive("hub.max_params_m", cfg.hub.max_params_m, allow_none=True)
    c = cfg.cluster
    if isinstance(c, LocalClusterConfig):
        positive("cluster.processes", c.processes)
        positive("cluster.timeout_min", c.timeout_min)
    elif isinstance(c, SlurmClusterConfig):
        if c.gpus_per_node < 0:
            p.append(f"cluster.gpus_per_node={c.gpus_per_node} must be >= 0")
        positive("cluster.cpus_per_task", c.cpus_per_task)
        positive("cluster.mem_gb", c.mem_gb)
        positive("cluster.runs_per_job", c.runs_per_job)
        positive("cluster.array_parallelism", c.array_parallelism)
        if c.signal_delay_s < 0:
            p.append(f"cluster.signal_delay_s={c.signal_delay_s} must be >= 0")
        for version, minutes in c.time_min_per_run.items():
            positive(f"cluster.time_min_per_run.{version}", minutes)
        positive("cluster.default_time_min_per_run", c.default_time_min_per_run, allow_none=True)
        if c.gpus_per_node == 0 and cfg.device.startswith("cuda"):
            p.append(f"device={cfg.device} needs a GPU but cluster.gpus_per_node=0")
    else:
        p.append(
            f"cluster is {type(c).__name__}, not a cluster config: pick one with cluster=local, cluster=slurm "
            "or cluster=<your conf/cluster/NAME.yaml>"
        )
    if p:
        raise SweepConfigError("invalid sweep config:\n  " + "\n  ".join(p))


def check_hub(cfg: SweepConfig) -> SearchSpace:
    """The search space restricted to the sweep's hub.

    Raises:
        SweepConfigError: unknown search space or model, or a restriction that leaves no model.
    """
    try:
        space = SearchSpace.load(cfg.hub.search_space)
    except FileNotFoundError as e:
        raise SweepConfigError(f"hub.search_space: {e}") from e
    if cfg.hub.models is not None:
        unknown = []
        for m in cfg.hub.models:
            try:
                space.model(m)
            except KeyError:
                unknown.append(m)
        if unknown:
            raise SweepConfigError(
                f"hub.models: unknown model(s) {unknown}; known (timm name or paper alias): "
                f"{[m.name for m in space.models]}"
            )
    try:
        return space.restrict(max_params_m=cfg.hub.max_params_m, models=cfg.hub.models)
    except ValueError as e:
        smallest = min(space.models, key=lambda m: m.params_m)
        raise SweepConfigError(
            f"hub: models={cfg.hub.models} with max_params_m={cfg.hub.max_params_m} leaves no model "
            f"(the smallest is {smallest.name} with {smallest.params_m}M parameters)"
        ) from e


def space_for_weights(space: SearchSpace, pretrained: str) -> SearchSpace:
    """The space without the pipelines a weight policy cannot train: ``pretrained=none`` has no source
    head, so Co-Tuning (``cotuning_reg > 0``) is fixed to 0 (``metagen.finetune`` rejects it otherwise)."""
    if pretrained != "none":
        return space
    hps = tuple(
        replace(hp, values=tuple(v for v in hp.values if v == 0) or (0.0,)) if hp.name == "cotuning_reg" else hp
        for hp in space.hyperparameters
    )
    return replace(space, hyperparameters=hps)


def check_writable(path: Path, what: str, version: str | None = None) -> None:
    """``path`` (a folder, existing or not) can be created and written by this user; for a store with a
    ``version``, also the folder its runs of that version go into.

    Raises:
        StoreNotWritableError: naming the folder and the first ancestor that blocks it.
    """
    from metagen.store import errors, layout

    try:
        if version is None:
            layout.check_writable(path, what)
        else:
            layout.check_store_writable(path, version)
    except errors.StoreNotWritableError as e:
        raise StoreNotWritableError(str(e)) from e


def check_slurm_request(
    c: SlurmClusterConfig, job_time_min: int, partitions: dict[str, PartitionInfo], default: str | None
) -> str:
    """The request fits the partition (as ``sinfo`` reports it); returns the partition's name.

    Raises:
        SweepConfigError: unknown partition, or more GPUs / CPUs / memory / time than its nodes have.
    """
    name = c.partition or default
    if name is None:
        raise SweepConfigError(
            f"cluster.partition is null and the cluster has no default partition; pick one of {sorted(partitions)}"
        )
    if name not in partitions:
        raise SweepConfigError(f"cluster.partition={name!r} is not a partition of this cluster: {sorted(partitions)}")
    part = partitions[name]
    p: list[str] = []
    if c.gpus_per_node > part.max_gpus:
        p.append(
            f"gpus_per_node={c.gpus_per_node}, but nodes of partition {name!r} have at most {part.max_gpus} GPUs "
            f"(sinfo GRES: {part.gres or 'none'}); use gpus_per_node<={part.max_gpus} or another partition"
        )
    if c.cpus_per_task > part.max_cpus:
        p.append(f"cpus_per_task={c.cpus_per_task}, but nodes of partition {name!r} have at most {part.max_cpus} CPUs")
    if c.mem_gb * 1024 > part.max_mem_mb:
        p.append(
            f"mem_gb={c.mem_gb}, but nodes of partition {name!r} have at most {part.max_mem_mb / 1024:.1f} GB for jobs"
        )
    if part.max_time_min is not None and job_time_min > part.max_time_min:
        p.append(
            f"a job needs {job_time_min} min (runs_per_job={c.runs_per_job} x time_min_per_run), but partition "
            f"{name!r} allows at most {part.max_time_min} min; lower runs_per_job or time_min_per_run"
        )
    if p:
        raise SweepConfigError("impossible resource request:\n  " + "\n  ".join(p))
    return name
