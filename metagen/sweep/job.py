"""The work of one sweep job: a group of runs trained one after the other through ``metagen.finetune``.

:class:`SweepJob` is a submitit ``Checkpointable``: on preemption or at its time limit SLURM (or the
local controller) sends USR2, submitit calls :meth:`SweepJob.checkpoint`, which counts the
interruption of the current run and returns the job itself for requeueing; the requeued job skips
the runs already in the store and resumes the interrupted one from its last epoch checkpoint
(``finetune`` does both). A run interrupted more than ``max_requeues`` times is finished at once:
it is written to the store as ``timeout`` with the epochs it has. One bad run never stops the job:
its exception is recorded in ``<sweep_dir>/failures/<run_id>.json`` and the next run starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from omegaconf import MISSING
from submitit.helpers import Checkpointable, DelayedSubmission

from metagen.finetune.config import TrainingSettings
from metagen.locks import exclusive_lock
from metagen.sweep.config import SweepConfig
from metagen.sweep.plan import RunSpec

SWEEP_STATE_DIR = "_sweep"
"""Sub-folder of the checkpoint dir with the sweep's own per-run state (run ids never start with ``_``)."""


def requeue_limit_message(requeues: int, max_requeues: int) -> str:
    """The stored message of a run finished as ``timeout`` because it was interrupted too often."""
    return (
        f"interrupted {requeues} times (max_requeues={max_requeues}): finished as timeout with the epochs of its "
        "last checkpoint; raise max_requeues or the job time limit to train it further"
    )


@dataclass
class RunSettings(TrainingSettings):
    """What every run of a sweep shares: the :class:`~metagen.finetune.config.TrainingSettings` of the sweep
    (``store`` and ``hub_dir`` absolute; ``seed`` is the sweep's, each run trains with its :class:`RunSpec`'s
    seed) and these.

    Attributes:
        cap_s: the per-run cap in seconds (the version's when the sweep sets none).
        keep_checkpoints: keep a run's epoch checkpoints after it is in the store.
        search_space: the search space the pipelines were sampled from.
        checkpoint_dir: where ``<run_id>/`` checkpoints live.
        sweep_dir: the sweep directory (plan, logs, failures).
        max_requeues: interruptions one run may take before it is finished as ``timeout``.
    """

    cap_s: float | None = None
    keep_checkpoints: bool = False
    search_space: str = "v1"
    checkpoint_dir: str = MISSING
    sweep_dir: str = MISSING
    max_requeues: int = 3

    @classmethod
    def from_config(cls, cfg: SweepConfig) -> RunSettings:
        """The settings of a sweep config (paths made absolute)."""
        return cls(
            **{
                **cfg.training_settings(),
                "store": str(Path(cfg.store).expanduser().resolve()),
                "hub_dir": str(Path(cfg.hub_dir).expanduser().resolve()) if cfg.hub_dir is not None else None,
            },
            cap_s=cfg.run_cap_s(),
            keep_checkpoints=cfg.keep_checkpoints,
            search_space=cfg.hub.search_space,
            checkpoint_dir=str(cfg.checkpoint_path()),
            sweep_dir=str(cfg.sweep_path()),
            max_requeues=cfg.max_requeues,
        )


def finetune_config(settings: RunSettings, dataset: str, model: str, hp: dict[str, Any], seed: int) -> Any:
    """The ``metagen.finetune.FinetuneConfig`` of one pipeline on one dataset under the sweep's settings."""
    from metagen.finetune import FinetuneConfig

    return FinetuneConfig(
        **{**settings.training_settings(), "seed": seed},
        dataset=dataset,
        model=model,
        cap_s=settings.cap_s,
        hp=dict(hp),
        search_space=settings.search_space,
        checkpoint_dir=settings.checkpoint_dir,
        keep_checkpoint=settings.keep_checkpoints,
    )


@dataclass(frozen=True)
class RunOutcome:
    """What happened to one run in a job.

    Attributes:
        run_id: the run.
        status: the store status (ok | diverged | timeout | oom | error), or ``failed`` (an exception
            before training; nothing in the store, see the failure record), ``busy`` (another job holds
            the run) or ``interrupted`` (stopped on request; its checkpoint is on disk).
        n_epochs: epochs in the stored curve (``None`` if nothing was stored).
        resumed_from_epoch: the checkpoint epoch the run resumed after (``None`` = fresh start or not trained).
        wrote_store: whether this job wrote the run (``False``: it was in the store already).
        elapsed_s: wall-clock seconds this job spent on the run.
        requeues: preemptions/timeouts counted for the run so far.
        message: error message, if any.
    """

    run_id: str
    status: str
    n_epochs: int | None = None
    resumed_from_epoch: int | None = None
    wrote_store: bool = False
    elapsed_s: float = 0.0
    requeues: int = 0
    message: str | None = None


# ---- per-run state in the checkpoint dir -------------------------------------------------------


def _state_dir(checkpoint_dir: str | Path, kind: str) -> Path:
    d = Path(checkpoint_dir) / SWEEP_STATE_DIR / kind
    d.mkdir(parents=True, exist_ok=True)
    return d


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def _job_id() -> str | None:
    for var in ("SLURM_ARRAY_JOB_ID", "SLURM_JOB_ID", "SUBMITIT_LOCAL_JOB_ID"):
        if os.environ.get(var):
            task = os.environ.get("SLURM_ARRAY_TASK_ID")
            return f"{os.environ[var]}_{task}" if var == "SLURM_ARRAY_JOB_ID" and task else os.environ[var]
    return None


def read_requeues(checkpoint_dir: str | Path, run_id: str) -> int:
    """How often the run was preempted or timed out (0 if never)."""
    path = Path(checkpoint_dir) / SWEEP_STATE_DIR / "requeues" / f"{run_id}.json"
    try:
        return int(json.loads(path.read_text())["count"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def add_requeue(checkpoint_dir: str | Path, run_id: str) -> int:
    """Count one more preemption/timeout of the run; returns the new count."""
    path = _state_dir(checkpoint_dir, "requeues") / f"{run_id}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {"count": 0, "events": []}
    data["count"] = int(data.get("count", 0)) + 1
    data.setdefault("events", []).append({"at": datetime.now(UTC).isoformat(timespec="seconds"), "job": _job_id()})
    _write_json(path, data)
    return data["count"]


def failure_path(sweep_dir: str | Path, run_id: str) -> Path:
    """Where a run's last failure (exception before or outside training) is recorded."""
    return Path(sweep_dir) / "failures" / f"{run_id}.json"


@contextlib.contextmanager
def run_lock(checkpoint_dir: str | Path, run_id: str) -> Iterator[bool]:
    """Hold an exclusive lock on the run while training it; yields ``False`` if another process holds it.

    The lock is an ``flock`` on ``<checkpoint_dir>/_sweep/locks/<run_id>.lock``: the kernel drops it when
    its process dies, so a killed job never leaves a run locked.
    """
    with exclusive_lock(_state_dir(checkpoint_dir, "locks") / f"{run_id}.lock") as locked:
        yield locked


def drop_lock(checkpoint_dir: str | Path, run_id: str) -> None:
    """Delete a run's lock file once the run is in the store (nobody trains it again)."""
    (Path(checkpoint_dir) / SWEEP_STATE_DIR / "locks" / f"{run_id}.lock").unlink(missing_ok=True)


# ---- the job -----------------------------------------------------------------------------------


def _load_runner() -> tuple[Callable[..., Any], type[BaseException]]:
    from metagen.finetune import Interrupted, finetune

    return finetune, Interrupted


def _reraise(e: BaseException) -> bool:
    """Exceptions a job must not swallow: submitit's "not requeued" signal."""
    from submitit.core.utils import UncompletedJobError

    return isinstance(e, UncompletedJobError)


def run_one(
    spec: RunSpec,
    settings: RunSettings,
    should_stop: Callable[[], bool] | None = None,
    on_start: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Train one planned run (or finish it as timeout if it was requeued too often); never raises for a bad run.

    Args:
        spec: the run.
        settings: what every run of the sweep shares.
        should_stop: polled by ``finetune`` between batches; True stops the run (its checkpoint is kept).
        on_start: called with the run id once this process holds the run's lock.

    Raises:
        metagen.finetune.Interrupted: ``should_stop()`` returned True (the run's checkpoint is on disk).
    """
    finetune, interrupted = _load_runner()
    requeues = read_requeues(settings.checkpoint_dir, spec.run_id)
    t0 = time.monotonic()
    with run_lock(settings.checkpoint_dir, spec.run_id) as mine:
        if not mine:
            return RunOutcome(spec.run_id, "busy", requeues=requeues, message="another process is training this run")
        if on_start is not None:
            on_start(spec.run_id)
        cfg = finetune_config(settings, spec.dataset, spec.model, spec.hp, spec.seed)
        finish = requeue_limit_message(requeues, settings.max_requeues) if requeues > settings.max_requeues else None
        try:
            result = finetune(cfg, should_stop=should_stop, finish_as_timeout=finish)
        except interrupted:
            raise
        except Exception as e:
            if _reraise(e):
                raise
            _record_failure(settings, spec, e)
            return RunOutcome(
                spec.run_id,
                "failed",
                elapsed_s=time.monotonic() - t0,
                requeues=requeues,
                message=f"{type(e).__name__}: {e}",
            )
    if result.run_id != spec.run_id:  # the plan and the runner disagree: say so loudly, keep going
        message = f"finetune wrote run id {result.run_id}, the sweep planned {spec.run_id}"
        _record_failure(settings, spec, RuntimeError(message))
        return RunOutcome(spec.run_id, "failed", message=message, requeues=requeues)
    failure_path(settings.sweep_dir, spec.run_id).unlink(missing_ok=True)
    drop_lock(settings.checkpoint_dir, spec.run_id)
    return RunOutcome(
        spec.run_id,
        result.status,
        n_epochs=result.n_epochs,
        resumed_from_epoch=result.resumed_from_epoch,
        wrote_store=result.wrote_store,
        elapsed_s=time.monotonic() - t0,
        requeues=requeues,
        message=result.message,
    )


def _record_failure(settings: RunSettings, spec: RunSpec, e: BaseException) -> None:
    path = failure_path(settings.sweep_dir, spec.run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_json(
        path,
        {
            "run_id": spec.run_id,
            "dataset": spec.dataset,
            "model": spec.model,
            "error": type(e).__name__,
            "message": str(e),
            "traceback": "".join(traceback.format_exception(e)),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "job": _job_id(),
            "host": socket.gethostname(),
        },
    )


class SweepJob(Checkpointable):
    """A submitit job: trains ``runs`` one after the other; requeues itself on preemption/timeout.

    Calling it returns one :class:`RunOutcome` (as a dict) per run.
    """

    def __init__(self, runs: Sequence[RunSpec], settings: RunSettings):
        self.runs = tuple(runs)
        self.settings = settings
        self._current: str | None = None

    def __call__(self) -> list[dict[str, Any]]:
        outcomes = []
        for spec in self.runs:
            try:
                outcome = run_one(spec, self.settings, on_start=self._started)
            finally:
                self._current = None
            print(f"[metagen.sweep] {spec.run_id}: {outcome.status} {outcome.message or ''}".rstrip(), flush=True)
            outcomes.append(asdict(outcome))
        return outcomes

    def _started(self, run_id: str) -> None:
        self._current = run_id

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """Called by submitit on USR2: count the interruption of the current run, requeue the job."""
        if self._current is not None:
            n = add_requeue(self.settings.checkpoint_dir, self._current)
            print(f"[metagen.sweep] {self._current}: interrupted ({n} of {self.settings.max_requeues})", flush=True)
        return DelayedSubmission(SweepJob(self.runs, self.settings))
