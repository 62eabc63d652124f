"""Launching a sweep: check everything, plan from the store, record the plan, submit (or run) the jobs.

:func:`prepare` does every check and the planning and submits nothing; :func:`launch` then runs the
plan on the configured cluster. Both are what ``python -m metagen.sweep`` calls.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from metagen.locks import exclusive_lock
from metagen.sweep.checks import check_config, check_hub, check_slurm_request, check_writable, space_for_weights
from metagen.sweep.config import LocalClusterConfig, SlurmClusterConfig, SweepConfig
from metagen.sweep.errors import ClusterError, StoreNotWritableError, SweepConfigError, SweepError
from metagen.sweep.executors import job_name, job_time_min, local_executor, slurm_executor
from metagen.sweep.job import RunOutcome, RunSettings, SweepJob, finetune_config, run_one
from metagen.sweep.plan import DatasetRef, Plan, chunk, deal, plan_runs, resolve_dataset_paths
from metagen.sweep.record import PLAN_FILE, PlanRecord, append_launch, now_iso, write_plan
from metagen.sweep.slurm_info import alive_jobs, missing_slurm_commands, query_partitions


@dataclass
class Prepared:
    """A checked and planned sweep, ready to submit.

    Attributes:
        cfg: the sweep config.
        settings: what every run shares.
        datasets: the sweep's datasets.
        plan: every run, and which are in the store already.
        partition: SLURM partition the jobs go to (``None`` for local or the default partition).
        warnings: checks that could not be done (e.g. ``sinfo`` failed).
    """

    cfg: SweepConfig
    settings: RunSettings
    datasets: list[DatasetRef]
    plan: Plan
    partition: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class LaunchReport:
    """What a launch did.

    Attributes:
        prepared: the checked plan.
        job_ids: ids of the submitted jobs (empty for in-process runs and dry runs).
        jobs: the submitted submitit ``Job`` objects (``job.result()`` waits for one).
        folder: submitit folder of this launch (``None`` for in-process runs and dry runs).
        outcomes: per run, what happened (only when the launch waited for its runs).
        errors: jobs that ended without a result (killed, cancelled), with submitit's message.
    """

    prepared: Prepared
    job_ids: list[str] = field(default_factory=list)
    jobs: list[Any] = field(default_factory=list)
    folder: Path | None = None
    outcomes: list[RunOutcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# ---- preparation ----------------------------------------------------------------------------------


def load_datasets(paths: list[Path]) -> list[DatasetRef]:
    """Dataset refs (folder + name) of dataset folders, each opened with ``metagen.datasets.load_dataset``.

    Raises:
        SweepConfigError: a folder is not a usable Meta-Album dataset (all named at once).
    """
    from metagen.datasets import DatasetError, load_dataset

    refs, problems = [], []
    for p in paths:
        try:
            ds = load_dataset(p)
            refs.append(DatasetRef(str(p), ds.name, ds.fingerprint()))
        except DatasetError as e:
            problems.append(f"{p}: {e}")
    if problems:
        raise SweepConfigError("unusable datasets:\n  " + "\n  ".join(problems))
    return refs


def make_resolver(settings: RunSettings, names: dict[str, str], seed: int) -> Callable[..., tuple[str, str]]:
    """``(dataset path, model, hp) -> (run id, pipeline id)`` by ``metagen.finetune``'s rules.

    ``metagen.finetune.resolve_pipeline`` is asked once per model and dataset (it parses the search space,
    ~0.1 s): it canonicalises the model name and adds the run settings that join the pipeline (e.g.
    ``pretrained=none``, a non-default ``img_size``, the train recipe the dataset tolerates); those extras
    depend on the model, the dataset and the settings only, so the other pipelines reuse them. The first
    pipeline of every dataset is also checked against ``metagen.finetune.run_id_of``, so the plan never
    disagrees with the ids the runner writes.
    """
    from metagen.finetune import resolve_pipeline, run_id_of
    from metagen.store.schema import make_run_id, pipeline_id

    per_model: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    checked: set[str] = set()

    def resolve(dataset: str, model: str, hp: dict[str, Any]) -> tuple[str, str]:
        fcfg = finetune_config(settings, dataset, model, hp, seed)
        if (model, dataset) not in per_model:
            try:
                canonical, full = resolve_pipeline(fcfg)
            except (ValueError, FileNotFoundError) as e:
                raise SweepConfigError(f"the runner rejects a sampled pipeline ({model} on {dataset}): {e}") from e
            per_model[model, dataset] = (canonical, {k: v for k, v in full.items() if k not in hp})
        canonical, extras = per_model[model, dataset]
        pid = pipeline_id(canonical, {**hp, **extras})
        run_id = make_run_id(settings.version, names[dataset], pid, seed)
        if dataset not in checked:
            checked.add(dataset)
            expected = run_id_of(fcfg)
            if expected != run_id:
                raise SweepError(
                    f"run id mismatch: the sweep computes {run_id}, metagen.finetune {expected}; "
                    "the planner and the runner disagree on the pipeline (report this as a bug)"
                )
        return run_id, pid

    return resolve


def stored_run_ids(store: Path, version: str) -> set[str]:
    """Run ids of the version already in the store (empty if the store does not exist yet)."""
    from metagen.store import StoreReader
    from metagen.store.layout import STORE_FILE

    if not (store / STORE_FILE).exists():
        return set()
    reader = StoreReader(store, check=False)
    return set(reader.scan_runs(version).select("run_id").collect()["run_id"].to_list())


def check_stored_contents(store: Path, version: str, datasets: list[DatasetRef]) -> None:
    """Refuse datasets whose name the store already holds with other content (runs of it would be skipped as
    stored and the other content's curves served for them).

    Raises:
        SweepConfigError: naming every such dataset.
    """
    from metagen.finetune.errors import DatasetContentError
    from metagen.finetune.store_io import check_dataset_content
    from metagen.store.layout import STORE_FILE

    if not (store / STORE_FILE).exists():
        return
    problems = []
    for d in datasets:
        try:
            check_dataset_content(store, version, d.name, d.fingerprint, d.path)
        except DatasetContentError as e:
            problems.append(str(e))
    if problems:
        raise SweepConfigError("datasets whose name the store holds with other content:\n  " + "\n  ".join(problems))


def _check_store(store: Path, version: str) -> None:
    from metagen.store import StoreError, read_metadata
    from metagen.store.layout import STORE_FILE

    if store.exists() and not store.is_dir():
        raise StoreNotWritableError(f"store {store} is a file; give a store folder (existing or new)")
    if (store / STORE_FILE).exists():
        try:
            meta = read_metadata(store)
        except StoreError as e:
            raise SweepConfigError(f"store {store}: {e}") from e
        if meta.synthetic:
            raise SweepConfigError(f"store {store} is synthetic; measured runs go into another store")
    elif store.is_dir() and any(store.iterdir()):
        raise SweepConfigError(
            f"{store} exists, is not empty and is not a learning-curve store (no store.json); "
            "give a new folder or an existing store"
        )
    check_writable(store, "store", version)


def _check_slurm(cfg: SweepConfig, warnings: list[str]) -> str | None:
    c = cfg.cluster
    assert isinstance(c, SlurmClusterConfig)
    if missing := missing_slurm_commands():
        if cfg.dry_run:  # planning needs no cluster: say what was not checked
            warnings.append(
                f"{'/'.join(missing)} not on the PATH: planned without checking the partitions or the jobs "
                "still queued; a real launch needs a SLURM login node"
            )
            return c.partition
        raise ClusterError(
            f"cluster=slurm, but {'/'.join(missing)} not on the PATH: launch from a SLURM login node, "
            "or use cluster=local (dry_run=true plans without SLURM)"
        )
    partition = c.partition
    time_min = job_time_min(cfg, c.runs_per_job)
    if c.check_resources:
        try:
            partitions, default = query_partitions()
        except Exception as e:  # sinfo failing/hanging/restricted: submit unchecked, sbatch still validates
            warnings.append(f"`sinfo` failed ({e}); the resource request was not checked against the partitions")
        else:
            partition = check_slurm_request(c, time_min, partitions, default)
    if not cfg.force and not cfg.dry_run:
        alive = alive_jobs(job_name(cfg))
        if alive:
            raise ClusterError(
                f"jobs of sweep {cfg.name!r} are still queued or running ({job_name(cfg)}: {', '.join(alive)}); "
                f"relaunching now could train the same runs twice. Wait for them, cancel them "
                f"(scancel -n {job_name(cfg)}), or pass force=true"
            )
    return partition


def prepare(cfg: SweepConfig) -> Prepared:
    """Check the config, the datasets, the hub, the store and the cluster; plan the sweep. Submits nothing.

    Raises:
        SweepConfigError, StoreNotWritableError, ClusterError: with what to do.
    """
    check_config(cfg)
    space = space_for_weights(check_hub(cfg), cfg.pretrained)
    store = Path(cfg.store).expanduser().resolve()
    _check_store(store, cfg.version)
    check_writable(cfg.sweep_path(), "sweep_dir")
    check_writable(cfg.checkpoint_path(), "checkpoint_dir")
    datasets = load_datasets(resolve_dataset_paths(cfg.datasets))
    warnings: list[str] = []
    partition = _check_slurm(cfg, warnings) if isinstance(cfg.cluster, SlurmClusterConfig) else None
    settings = RunSettings.from_config(cfg)
    resolver = make_resolver(settings, {d.path: d.name for d in datasets}, cfg.seed)
    check_stored_contents(store, cfg.version, datasets)
    plan = plan_runs(datasets, space, cfg.pipelines_per_dataset, cfg.seed, resolver, stored_run_ids(store, cfg.version),
                     include_defaults=cfg.include_defaults)  # fmt: skip
    check_plan_kept(cfg, plan)
    return Prepared(cfg, settings, datasets, plan, partition, warnings)


PLAN_KEYS = ("datasets", "version", "seed", "pipelines_per_dataset", "include_defaults", "hub", "epochs",
             "schedule_epochs", "pretrained", "img_size")  # fmt: skip
"""Config keys that decide which runs a sweep plans (named when a relaunch would drop planned runs)."""


def check_plan_kept(cfg: SweepConfig, plan: Plan) -> None:
    """A relaunch of a sweep name may extend its plan (more pipelines, more datasets), never drop planned runs.

    Raises:
        SweepConfigError: the sweep directory has a plan with runs the new plan lacks (another seed, version,
            hub, budget, ...): saying what changed and how to keep both plans or replace the old one.
    """
    path = cfg.sweep_path() / PLAN_FILE
    if not path.is_file():
        return
    try:
        old = PlanRecord.read(path)
    except ValueError:
        return  # unreadable: the launch rewrites it (as its message says)
    planned = {r.run_id for r in plan.runs}
    dropped = [r.run_id for r in old.runs if r.run_id not in planned]
    if not dropped:
        return
    new = asdict(cfg)
    changed = [f"{k}: {old.config.get(k)!r} -> {new[k]!r}" for k in PLAN_KEYS if old.config.get(k) != new[k]]
    raise SweepConfigError(
        f"sweep {cfg.name!r} already has a plan ({path}, {len(old.runs)} runs, {old.created_at}) and this launch "
        f"would replace it: {len(dropped)} of its runs are not in the new plan"
        + (f" (changed: {'; '.join(changed)})" if changed else "")
        + f". To keep both plans, give this sweep another name (name=...; `python -m metagen.sweep.status "
        f"{cfg.store} --sweep NAME` shows each); to replace the old plan, delete {path}. Runs already stored stay in "
        "the store either way."
    )


def plan_record(cfg: SweepConfig, prep: Prepared) -> PlanRecord:
    """The ``plan.json`` record of a prepared sweep (its last launch not filled in yet)."""
    return PlanRecord(
        name=cfg.name,
        store=prep.settings.store,
        version=cfg.version,
        runs=prep.plan.runs,
        created_at=now_iso(),
        config=asdict(cfg),
        checkpoint_dir=prep.settings.checkpoint_dir,
        sweep_dir=prep.settings.sweep_dir,
        launch={"cluster": cfg.cluster.kind, "jobs": [], "folder": None},
    )


# ---- launching --------------------------------------------------------------------------------------


@contextlib.contextmanager
def launch_lock(sweep_dir: Path) -> Iterator[None]:
    """One launcher per sweep directory at a time.

    Raises:
        ClusterError: another launch of this sweep is running (planning, submitting or running in-process).
    """
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(sweep_dir / ".launch.lock") as locked:
        if not locked:
            raise ClusterError(
                f"another launch of this sweep is running (lock {sweep_dir / '.launch.lock'}); wait for it to end"
            )
        yield


def launch(cfg: SweepConfig, prepared: Prepared | None = None, progress: bool = True) -> LaunchReport:
    """Plan the sweep and run it on its cluster: submit SLURM/local jobs, or train in this process.

    Args:
        cfg: the sweep config.
        prepared: the result of :func:`prepare` (computed if ``None``).
        progress: show tqdm progress while waiting.
    """
    prep = prepared or prepare(cfg)  # bad input fails here, before anything is written
    report = LaunchReport(prep)
    if cfg.dry_run:
        return report
    with launch_lock(cfg.sweep_path()):
        from metagen.store import StoreMetadata, create_store

        create_store(cfg.store, StoreMetadata(name=Path(cfg.store).name, description="measured by metagen.sweep"))
        record = plan_record(cfg, prep)
        sweep_dir = cfg.sweep_path()
        write_plan(sweep_dir, record)
        todo = list(prep.plan.todo)
        c = cfg.cluster
        if not todo:
            append_launch(sweep_dir, prep.plan, {"cluster": c.kind, "jobs": []})
            return report
        if isinstance(c, LocalClusterConfig) and c.processes == 1 and not c.use_submitit:
            append_launch(sweep_dir, prep.plan, {"cluster": "local-inprocess", "jobs": []})
            report.outcomes = run_in_process(todo, prep.settings, progress)
            return report
        folder = sweep_dir / "jobs" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        jobs = _submit(cfg, prep, todo, folder)
        report.jobs = jobs
        report.job_ids = [str(j.job_id) for j in jobs]
        report.folder = folder
        record = replace(record, launch={"cluster": c.kind, "jobs": report.job_ids, "folder": str(folder)})
        write_plan(sweep_dir, record)
        append_launch(sweep_dir, prep.plan, {"cluster": c.kind, "jobs": report.job_ids, "folder": str(folder)})
        if c.wait:
            report.outcomes, report.errors = wait_for_jobs(jobs, prep, progress)
        return report


def _submit(cfg: SweepConfig, prep: Prepared, todo: list, folder: Path) -> list[Any]:
    c = cfg.cluster
    settings = prep.settings
    if isinstance(c, SlurmClusterConfig):
        groups = chunk(todo, c.runs_per_job)
        ex = slurm_executor(cfg, folder, c.runs_per_job, prep.partition)
        with ex.batch():
            jobs = [ex.submit(SweepJob(g, settings)) for g in groups]
        return jobs
    assert isinstance(c, LocalClusterConfig)
    groups = deal(todo, c.processes)
    gpus = _visible_gpus(cfg)
    jobs = []
    for k, g in enumerate(groups):
        ex = local_executor(cfg, folder, len(g), gpus[k % len(gpus)] if gpus else None)
        jobs.append(ex.submit(SweepJob(g, settings)))
    return jobs


def _visible_gpus(cfg: SweepConfig) -> list[int]:
    if cfg.device == "cpu":
        return []
    import torch

    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


# ---- running and waiting ---------------------------------------------------------------------------


@contextlib.contextmanager
def _graceful_sigint() -> Iterator[Callable[[], bool]]:
    """A ``should_stop`` set by the first Ctrl-C (the run stops at its next batch); the second one aborts."""
    state = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def handler(signum: int, frame: Any) -> None:
        if state["stop"]:
            raise KeyboardInterrupt
        state["stop"] = True
        print("\n[metagen.sweep] stopping after the current batch (Ctrl-C again to abort); relaunch to resume")

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: state["stop"]
    finally:
        signal.signal(signal.SIGINT, old)


def run_in_process(todo: list, settings: RunSettings, progress: bool = True) -> list[RunOutcome]:
    """Train the runs in this process one after the other (``cluster=local processes=1``), with a progress bar.

    Ctrl-C stops the current run at its next batch (its checkpoint is kept) and ends the sweep.
    """
    from tqdm import tqdm

    from metagen.finetune import Interrupted

    outcomes: list[RunOutcome] = []
    with _graceful_sigint() as should_stop, tqdm(total=len(todo), unit="run", disable=not progress) as bar:
        for spec in todo:
            bar.set_postfix_str(f"{spec.dataset_name} {spec.model}")
            try:
                outcome = run_one(spec, settings, should_stop=should_stop)
            except Interrupted as e:
                outcomes.append(RunOutcome(spec.run_id, "interrupted", message=str(e)))
                break
            outcomes.append(outcome)
            bar.update(1)
            if outcome.status == "failed":
                bar.write(f"[metagen.sweep] {spec.run_id} failed: {outcome.message}")
    return outcomes


def wait_for_jobs(
    jobs: list[Any], prep: Prepared, progress: bool = True, poll_s: float | None = None
) -> tuple[list[RunOutcome], list[str]]:
    """Wait for submitted jobs with a progress bar of runs in the store; returns (outcomes, job errors).

    Args:
        poll_s: seconds between checks; ``None`` = 1 for local jobs, 5 for SLURM (``sacct`` is polled).
    """
    from tqdm import tqdm

    if poll_s is None:
        poll_s = 5.0 if isinstance(prep.cfg.cluster, SlurmClusterConfig) else 1.0
    from metagen.store.layout import loose_path

    store, version = Path(prep.settings.store), prep.cfg.version
    waiting = {r.run_id: loose_path(store, version, r.dataset_name, r.run_id) for r in prep.plan.todo}
    with tqdm(total=len(waiting), unit="run", disable=not progress) as bar:
        while True:
            finished = all(j.done() for j in jobs)
            stored = [rid for rid, path in waiting.items() if path.exists()]  # a stat per run, not a store read
            for rid in stored:
                del waiting[rid]
            bar.update(len(stored))
            if finished:
                break
            time.sleep(poll_s)
    outcomes: list[RunOutcome] = []
    errors: list[str] = []
    for j in jobs:
        try:
            outcomes.extend(RunOutcome(**o) for o in j.result())
        except Exception as e:  # killed / cancelled / crashed jobs: report them, relaunch resumes their runs
            errors.append(f"job {j.job_id}: {type(e).__name__}: {str(e).strip().splitlines()[0][:300]}")
    return outcomes, errors
