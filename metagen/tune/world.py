"""Where the steps of a tuning session run: N local worker processes, or SLURM jobs through submitit.

A world (:class:`World`) serves the session's steps asynchronously: ``step`` starts one, ``wait`` for any to
finish, ``result`` of a finished one, ``finish`` writes an unfinished pipeline to the store, ``epochs`` reads what
a pipeline has trained so far. Both real worlds run :mod:`metagen.tune.worker` and read the store and the
checkpoints (the source of truth; a SLURM job writes them on the shared filesystem). Local workers are spawned
processes (one torch import each, reused for every step) that die with the session's process, so a killed
session leaves no orphan training a pipeline.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from metagen.tune.worker import EpochRow, StepOutcome, close_run, current_epochs, run_step, set_parent_death_signal

SLURM_MEM_GB = 4.0
"""Memory of a step's SLURM job (one finetuning run of the session's small models)."""


class World(Protocol):
    """Where a session's steps run (a step ``spec`` is built by :func:`metagen.tune.session.step_spec`)."""

    def step(self, spec: dict[str, Any]) -> Any:
        """Starts training ``spec["run_id"]`` up to epoch ``spec["target"]``; returns a handle."""
        ...

    def finish(self, spec: dict[str, Any], reason: str) -> Any:
        """Starts writing a pipeline short of its budget to the store as ``timeout``; returns a handle."""
        ...

    def wait(self, handles: Iterable[Any], timeout: float) -> list[Any]:
        """The handles among ``handles`` that finished within ``timeout`` seconds."""
        ...

    def result(self, handle: Any) -> Any:
        """The return value of a finished handle (a :class:`StepOutcome` for a step)."""
        ...

    def epochs(self, spec: dict[str, Any]) -> tuple[str | None, list[EpochRow]]:
        """``(stored status or None, epochs)`` the pipeline has now (see :func:`current_epochs`)."""
        ...

    def close(self) -> None:
        """Releases the world's workers."""
        ...


class _Submitting(ABC):
    """The step, finish and epochs of the real worlds, on top of their ``submit``."""

    @abstractmethod
    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Starts ``fn(*args)``; returns its handle."""

    def step(self, spec: dict[str, Any]) -> Any:
        """Starts a training step (:func:`run_step`)."""
        return self.submit(run_step, spec)

    def finish(self, spec: dict[str, Any], reason: str) -> Any:
        """Starts :func:`close_run`."""
        return self.submit(close_run, spec, reason)

    def epochs(self, spec: dict[str, Any]) -> tuple[str | None, list[EpochRow]]:
        """Read here from the store and the checkpoint (a SLURM job writes them on the shared filesystem)."""
        return current_epochs(spec)


class LocalWorld(_Submitting):
    """``workers`` spawned processes serving steps."""

    def __init__(self, workers: int):
        self.pool = cf.ProcessPoolExecutor(
            max_workers=int(workers), mp_context=mp.get_context("spawn"), initializer=set_parent_death_signal
        )

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Starts ``fn(*args)`` in a worker; returns its handle."""
        return self.pool.submit(fn, *args)

    def wait(self, handles: Iterable[Any], timeout: float) -> list[Any]:
        """The handles among ``handles`` that finished within ``timeout`` seconds."""
        done, _ = cf.wait(list(handles), timeout=max(timeout, 0.0), return_when=cf.FIRST_COMPLETED)
        return list(done)

    def result(self, handle: Any) -> Any:
        """The return value of a finished handle."""
        return handle.result()

    def close(self) -> None:
        """Shuts the workers down."""
        self.pool.shutdown(wait=True, cancel_futures=True)


class SlurmWorld(_Submitting):
    """One SLURM job per step through submitit (at most ``workers`` at a time: the session submits no more).

    ``job_name`` names the session's jobs only: jobs of it still alive when the world starts are those of a
    killed launch of the same session, and are cancelled first (``cancelled``), as local workers die with
    their session; their steps start again from their checkpoints.
    """

    def __init__(self, folder: Path, partition: str | None, time_min: int, cpus: int, job_name: str):
        from submitit import SlurmExecutor

        from metagen.slurm import sbatch_parameters
        from metagen.sweep.slurm_info import cancel_jobs

        self.cancelled = cancel_jobs(job_name)

        self.executor = SlurmExecutor(folder=Path(folder) / "%j", max_num_timeout=0)
        self.executor.update_parameters(
            **sbatch_parameters(
                job_name=job_name, time_min=int(time_min), cpus_per_task=int(cpus), mem_gb=SLURM_MEM_GB,
                array_parallelism=1, setup=[], additional_parameters={}, optional={"partition": partition},
            )
        )  # fmt: skip
        # array_parallelism is a parameter of job arrays; single jobs ignore it
        self.poll_s = 2.0
        self.specs: dict[str, dict[str, Any]] = {}  # job id -> the step it trains

    def step(self, spec: dict[str, Any]) -> Any:
        """Submits a training step (:func:`run_step`)."""
        job = super().step(spec)
        self.specs[job.job_id] = spec
        return job

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Submits ``fn(*args)`` as a job."""
        return self.executor.submit(fn, *args)

    def wait(self, handles: Iterable[Any], timeout: float) -> list[Any]:
        """Polls the jobs until one is done or ``timeout`` passes."""
        handles = list(handles)
        end = time.monotonic() + max(timeout, 0.0)
        while True:
            done = [h for h in handles if h.done()]
            if done or time.monotonic() >= end:
                return done
            time.sleep(min(self.poll_s, max(end - time.monotonic(), 0.0)))

    def result(self, handle: Any) -> Any:
        """The job's return value; a failed step's job (time limit, node failure, cancelled) becomes a step
        outcome with its error and the epochs its checkpoint kept."""
        try:
            return handle.result()
        except Exception as e:  # submitit raises on a job that failed or was cancelled
            spec = self.specs.get(handle.job_id)
            if spec is None:
                raise
            status, epochs = current_epochs(spec)
            return StepOutcome(spec["run_id"], epochs, status, f"SLURM job {handle.job_id} failed: {e}")

    def close(self) -> None:
        """Nothing to release (jobs end by themselves)."""
