"""Replaying an optimizer on a task's recorded curves under a simulated clock.

One loop drives every method through the ask/tell protocol (:mod:`benchmark.protocol`):

* **Freeze-thaw.** ``Ask(i, b)`` trains pipeline ``i`` from its highest trained epoch ``h`` to
  ``b``; only epochs ``h+1 .. b`` are charged (their recorded ``train_time + eval_time``). Asking
  for ``b <= h`` is a lookup: free, answered at once, no epoch event. A curve that ends before
  ``b`` (truncated by the generation cap, diverged, ...) stops there with ``last=True``; asking a
  pipeline for more after it was told ``last`` is an error.
* **Workers.** ``n_workers`` simulated workers train asynchronously. Events are epoch finishes,
  processed in simulated-time order (ties by start order): ``on_epoch`` for every epoch,
  ``tell`` when a step ends (its target epoch, the curve's end, or ``on_epoch`` returned False).
  An idle worker asks at once; ``ask`` returning ``None`` while other workers train means "wait";
  ``None`` with nothing in flight ends the replay.
* **Budget.** No ask is made at or after ``budget_s``, and an epoch that would finish after
  ``budget_s`` is not observed (the trajectory never passes the budget).
* **Overhead** (:mod:`benchmark.clock`): the optimizer is one process. Overhead charged for
  ``ask`` delays the step's start; for ``tell`` it delays the next ask; measured ``on_epoch``
  time also moves the optimizer's clock, while the worker's next epoch runs on (it overlaps).
* **Incumbent:** the best accuracy observed so far; diverged (``nan``) epochs never count.

Imports neither torch nor timm.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from benchmark.clock import OverheadPolicy, OverheadSpec, SimulatedClock
from benchmark.protocol import Ask, EpochResult, Optimizer
from benchmark.task import Task, default_budget

MAX_CONSECUTIVE_LOOKUPS = 100_000
"""An optimizer that asks this many lookups in a row without training anything is stuck."""


class ReplayError(RuntimeError):
    """An optimizer broke the protocol (asked outside the task, beyond a curve, or got stuck)."""


@dataclass(frozen=True, eq=False)
class Trajectory:
    """What a replay observed: one entry per trained epoch, in simulated-time order.

    Attributes:
        dataset, version: the task.
        budget_s: simulated-seconds budget of the replay.
        overhead: overhead policy label (``none``, ``measured`` or seconds per step).
        n_workers: simulated workers.
        step: ``(k,)`` int64, index of the ask (0-based, lookups included) that trained the epoch.
        time: ``(k,)`` float64, simulated seconds at the end of the epoch.
        pipeline: ``(k,)`` int64, candidate index.
        epoch: ``(k,)`` int64, 1-based epoch.
        value: ``(k,)`` float64, accuracy (``nan`` = diverged).
        incumbent: ``(k,)`` float64, best non-diverged accuracy so far (``nan`` before the first).
        regret: ``(k,)`` float64, normalised regret of the incumbent (1.0 before the first).
        n_steps: asks answered (lookups included).
        end_time: simulated time when the replay stopped (``budget_s`` when the budget ran out).
        overhead_s: simulated seconds charged for optimizer overhead.
        stop: why it stopped: ``budget``, ``exhausted`` (nothing left to ask) or ``max_steps``.
    """

    dataset: str
    version: str
    budget_s: float
    overhead: str
    n_workers: int
    step: np.ndarray
    time: np.ndarray
    pipeline: np.ndarray
    epoch: np.ndarray
    value: np.ndarray
    incumbent: np.ndarray
    regret: np.ndarray
    n_steps: int
    end_time: float
    overhead_s: float
    stop: str

    @property
    def final_incumbent(self) -> float:
        """Best accuracy found within the budget (``nan`` if none)."""
        return float(self.incumbent[-1]) if self.incumbent.size else math.nan

    @property
    def final_regret(self) -> float:
        """Normalised regret at the end of the budget (1.0 if nothing was found)."""
        return float(self.regret[-1]) if self.regret.size else 1.0


@dataclass
class _Job:
    ask: Ask
    step: int
    pipeline: int
    next_epoch: int
    end: int
    results: list[EpochResult] = field(default_factory=list)


def replay(
    task: Task,
    optimizer: Optimizer,
    budget_s: float | None = None,
    *,
    overhead: OverheadSpec | OverheadPolicy = "none",
    n_workers: int = 1,
    clock: SimulatedClock | None = None,
    max_steps: int | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> Trajectory:
    """Runs ``optimizer`` on ``task`` until the budget is spent or it has nothing left to ask.

    Args:
        task: the task (its curves stay hidden from the optimizer).
        optimizer: a fresh optimizer built on ``task.view``.
        budget_s: simulated seconds (default: the version's budget, see ``metagen.versions.VERSIONS``);
            ``inf`` runs until the optimizer is exhausted.
        overhead: ``"none"`` | ``"measured"`` | seconds per step (see :mod:`benchmark.clock`).
        n_workers: simulated workers training in parallel.
        clock: the simulated clock (its ``timer`` measures overhead); a fresh one by default.
        max_steps: stop after this many asks (``None`` = no limit).
        progress: called after every ask with the number of asks so far and the simulated seconds
            since the start (for progress reports of long replays).

    Returns:
        The :class:`Trajectory` of every epoch trained within the budget.

    Raises:
        ReplayError: the optimizer asked for a pipeline outside the task, an epoch outside
            ``1..max_epochs``, a pipeline a worker is training, more of a finished curve, or
            made too many lookups in a row.
    """
    budget = default_budget(task.version) if budget_s is None else float(budget_s)
    if not budget > 0:
        raise ValueError(f"budget_s must be positive, got {budget_s}")
    if int(n_workers) < 1:
        raise ValueError(f"n_workers must be at least 1, got {n_workers}")
    policy = OverheadPolicy.parse(overhead)
    clock = clock if clock is not None else SimulatedClock()
    measured = policy.kind == "measured"
    timer = clock.timer
    start_time = clock.now
    limit = start_time + budget

    n = task.n
    values, cost, lengths = task.values, task.cost, task.n_epochs
    highest = np.zeros(n, dtype=np.int64)
    told_last = np.zeros(n, dtype=bool)
    busy: set[int] = set()
    heap: list[tuple[float, int, _Job]] = []
    seq = 0
    idle = int(n_workers)
    steps = 0
    lookups_in_row = 0
    overhead_s = 0.0
    stop = ""
    waiting = False  # the optimizer said "nothing now"; ask again only after a tell
    rows_step: list[int] = []
    rows_time: list[float] = []
    rows_pipe: list[int] = []
    rows_epoch: list[int] = []
    rows_value: list[float] = []

    def charge(seconds: float) -> None:
        nonlocal overhead_s
        if seconds > 0:
            clock.now += seconds
            overhead_s += seconds

    def tell(job: _Job) -> None:
        nonlocal waiting
        waiting = False
        t0 = timer() if measured else 0.0
        optimizer.tell(job.ask, job.results)
        if measured:
            charge(policy.step_cost(timer() - t0))

    while True:
        # ---- idle workers ask ----------------------------------------------------------------------
        while idle > 0 and not stop and not waiting and clock.now < limit:
            if max_steps is not None and steps >= max_steps:
                stop = "max_steps"
                break
            t0 = timer() if measured else 0.0
            ask = optimizer.ask()
            if ask is None:
                if measured:
                    charge(policy.step_cost(timer() - t0))
                if not heap:
                    stop = "exhausted"
                waiting = True
                break
            charge(policy.step_cost(timer() - t0 if measured else 0.0))
            i, e = _check_ask(task, ask, busy, told_last, highest)
            step = steps
            steps += 1
            if progress is not None:
                progress(steps, clock.now - start_time)
            if clock.now >= limit:
                break
            if e <= highest[i]:  # lookup: free, answered at once
                lookups_in_row += 1
                if lookups_in_row > MAX_CONSECUTIVE_LOOKUPS:
                    raise ReplayError(
                        f"{type(optimizer).__name__} asked {MAX_CONSECUTIVE_LOOKUPS} lookups in a row on task "
                        f"{task.dataset} without training anything; it is stuck"
                    )
                last = bool(e == lengths[i])
                result = EpochResult(i, e, float(values[i, e - 1]), 0.0, last)
                optimizer.on_epoch(result)
                tell(_Job(ask, step, i, e, e, [result]))
                continue
            lookups_in_row = 0
            end = min(e, int(lengths[i]))
            job = _Job(ask, step, i, int(highest[i]) + 1, end)
            busy.add(i)
            idle -= 1
            heapq.heappush(heap, (clock.now + float(cost[i, job.next_epoch - 1]), seq, job))
            seq += 1

        if not heap:
            stop = stop or ("budget" if clock.now >= limit else "exhausted")
            break
        t_end, _, job = heapq.heappop(heap)
        if t_end > limit:
            stop = stop or "budget"
            break
        clock.advance_to(t_end)
        i, e = job.pipeline, job.next_epoch
        value = float(values[i, e - 1])
        last = e == lengths[i]
        result = EpochResult(i, e, value, float(cost[i, e - 1]), bool(last))
        highest[i] = e
        if last:
            told_last[i] = True
        job.results.append(result)
        rows_step.append(job.step)
        rows_time.append(t_end)
        rows_pipe.append(i)
        rows_epoch.append(e)
        rows_value.append(value)
        t0 = timer() if measured else 0.0
        go_on = optimizer.on_epoch(result)
        if measured:
            charge(policy.step_cost(timer() - t0))
        if e < job.end and go_on is not False:
            job.next_epoch = e + 1
            heapq.heappush(heap, (t_end + float(cost[i, e]), seq, job))
            seq += 1
            continue
        busy.discard(i)
        idle += 1
        tell(job)

    value_arr = np.asarray(rows_value, dtype=np.float64)
    incumbent = np.fmax.accumulate(value_arr) if value_arr.size else value_arr
    regret = np.asarray(task.regret(incumbent), dtype=np.float64) if value_arr.size else value_arr
    return Trajectory(
        dataset=task.dataset,
        version=task.version,
        budget_s=budget,
        overhead=policy.label,
        n_workers=int(n_workers),
        step=np.asarray(rows_step, dtype=np.int64),
        time=np.asarray(rows_time, dtype=np.float64) - start_time,
        pipeline=np.asarray(rows_pipe, dtype=np.int64),
        epoch=np.asarray(rows_epoch, dtype=np.int64),
        value=value_arr,
        incumbent=incumbent,
        regret=regret,
        n_steps=steps,
        end_time=budget if stop == "budget" else min(clock.now, limit) - start_time,
        overhead_s=overhead_s,
        stop=stop,
    )


def _check_ask(task: Task, ask: object, busy: set[int], told_last: np.ndarray, highest: np.ndarray) -> tuple[int, int]:
    """The ask's (pipeline, epoch), or a :class:`ReplayError` naming what is wrong."""
    if not isinstance(ask, Ask):
        raise ReplayError(f"ask() must return benchmark.protocol.Ask or None, got {type(ask).__name__}: {ask!r}")
    i, e = int(ask.pipeline), int(ask.epoch)
    if not 0 <= i < task.n:
        raise ReplayError(f"asked for pipeline {i}, but task {task.dataset} has candidates 0..{task.n - 1}")
    if not 1 <= e <= task.view.max_epochs:
        raise ReplayError(
            f"asked pipeline {i} for epoch {e}; epochs of task {task.dataset} are 1..{task.view.max_epochs}"
        )
    if i in busy:
        raise ReplayError(f"asked for pipeline {i}, which a worker is training now (see BaseOptimizer.available())")
    if told_last[i] and e > highest[i]:
        raise ReplayError(
            f"asked pipeline {i} for epoch {e}, but its curve ended at epoch {highest[i]} (it was told last=True)"
        )
    return i, e


def trajectories_equal(a: Trajectory, b: Trajectory) -> bool:
    """Whether two trajectories are identical bit for bit (nan equal to nan)."""
    fields: Sequence[str] = ("step", "time", "pipeline", "epoch", "value", "incumbent", "regret")
    return all(np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True) for f in fields) and (
        a.n_steps,
        a.stop,
    ) == (b.n_steps, b.stop)
