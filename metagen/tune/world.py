"""Where the steps of a tuning session run: N local worker processes, or SLURM jobs through submitit.

Both serve :func:`metagen.tune.worker.run_step` asynchronously: ``submit`` a step, ``wait`` for any to finish,
``result`` of a finished one. Local workers are spawned processes (one torch import each, reused for every
step) that die with the session's process, so a killed session leaves no orphan training a pipeline.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from metagen.tune.worker import StepOutcome, run_step, set_parent_death_signal


class LocalWorld:
    """``workers`` spawned processes serving steps."""

    def __init__(self, workers: int):
        self.pool = cf.ProcessPoolExecutor(
            max_workers=int(workers), mp_context=mp.get_context("spawn"), initializer=set_parent_death_signal
        )

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Starts ``fn(*args)`` in a worker; returns its handle."""
        return self.pool.submit(fn, *args)

    def step(self, spec: dict[str, Any]) -> Any:
        """Starts a training step."""
        return self.submit(run_step, spec)

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


class SlurmWorld:
    """One SLURM job per step through submitit (at most ``workers`` at a time: the session submits no more)."""

    def __init__(self, folder: Path, partition: str | None, time_min: int, cpus: int, job_name: str):
        from submitit import SlurmExecutor

        from metagen.slurm import sbatch_parameters

        self.executor = SlurmExecutor(folder=Path(folder) / "%j", max_num_timeout=0)
        self.executor.update_parameters(
            **sbatch_parameters(
                job_name=job_name, time_min=int(time_min), cpus_per_task=int(cpus), mem_gb=4.0, array_parallelism=1,
                setup=[], additional_parameters={}, optional={"partition": partition},
            )
        )  # fmt: skip
        # array_parallelism is a parameter of job arrays; single jobs ignore it
        self.poll_s = 2.0

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Submits ``fn(*args)`` as a job."""
        return self.executor.submit(fn, *args)

    def step(self, spec: dict[str, Any]) -> Any:
        """Submits a training step."""
        return self.submit(run_step, spec)

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
        """The job's return value; a failed job becomes a step outcome with its error."""
        try:
            return handle.result()
        except Exception as e:  # submitit raises on a job that failed or was cancelled
            return StepOutcome(run_id="", error=f"SLURM job {handle.job_id} failed: {e}")

    def close(self) -> None:
        """Nothing to release (jobs end by themselves)."""
