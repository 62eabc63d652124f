"""The replay loop: freeze-thaw cost, simulated clock and overhead, budget, workers, protocol errors."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from benchmark.clock import OverheadPolicy, OverheadSpec, SimulatedClock
from benchmark.protocol import Ask, BaseOptimizer, EpochResult, SearchView
from benchmark.registry import make_optimizer
from benchmark.replay import ReplayError, replay, trajectories_equal
from benchmark.task import Task, load_tasks


class Scripted(BaseOptimizer):
    """Asks a fixed list of (pipeline, epoch); records what it is told."""

    def __init__(self, view: SearchView, asks: Sequence[tuple[int, int]], stop_after: int | None = None):
        super().__init__(view, 0)
        self.script = list(asks)
        self.told: list[tuple[Ask, list[EpochResult]]] = []
        self.epochs: list[EpochResult] = []
        self.stop_after = stop_after

    def ask(self) -> Ask | None:
        return self.issue(*self.script.pop(0)) if self.script else None

    def on_epoch(self, result: EpochResult) -> bool:
        super().on_epoch(result)
        self.epochs.append(result)
        return self.stop_after is None or result.epoch < self.stop_after

    def tell(self, ask: Ask, results: Sequence[EpochResult]) -> None:
        super().tell(ask, results)
        self.told.append((ask, list(results)))


@pytest.fixture(scope="module")
def task(bench_store: Path) -> Task:
    return load_tasks(bench_store, "micro", ["A"])[0]


def ok(task: Task, k: int = 0) -> int:
    return int(np.flatnonzero(task.status == "ok")[k])


def test_freeze_thaw_charges_only_new_epochs_and_lookups_are_free(task: Task) -> None:
    i = ok(task)
    opt = Scripted(task.view, [(i, 2), (i, 1), (i, 4)])
    traj = replay(task, opt, 1e9)
    cost = task.cost[i]
    assert traj.epoch.tolist() == [1, 2, 3, 4] and traj.step.tolist() == [0, 0, 2, 2]
    np.testing.assert_allclose(traj.time, np.cumsum(cost[:4]))
    lookup_ask, lookup = opt.told[1]
    assert lookup_ask == Ask(i, 1) and lookup == [EpochResult(i, 1, task.values[i, 0], 0.0, False)]
    assert [r.cost for r in opt.told[2][1]] == list(cost[2:4])
    assert traj.stop == "exhausted" and traj.n_steps == 3


def test_time_incumbent_and_regret_columns(task: Task) -> None:
    d = int(np.flatnonzero(task.status == "diverged")[0])
    i = ok(task)
    opt = Scripted(task.view, [(d, task.view.max_epochs), (i, 3)])
    traj = replay(task, opt, 1e9)
    n_d = int(task.n_epochs[d])
    assert traj.epoch.tolist() == [*range(1, n_d + 1), 1, 2, 3]
    assert opt.told[0][1][-1].last and math.isnan(opt.told[0][1][-1].value)
    expected = np.fmax.accumulate(np.r_[task.values[d, :n_d], task.values[i, :3]])
    np.testing.assert_array_equal(traj.incumbent, expected)
    assert np.isfinite(traj.incumbent).all()  # the diverged epoch never became the incumbent
    np.testing.assert_allclose(traj.regret, task.regret(expected))
    np.testing.assert_allclose(np.diff(traj.time), np.r_[task.cost[d, 1:n_d], task.cost[i, :3]])


def test_truncated_curve_ends_at_its_last_epoch_and_more_is_an_error(task: Task) -> None:
    t = int(np.flatnonzero(task.status == "timeout")[0])
    n = int(task.n_epochs[t])
    opt = Scripted(task.view, [(t, task.view.max_epochs), (t, n), (t, n + 1)])
    with pytest.raises(ReplayError, match=f"its curve ended at epoch {n}"):
        replay(task, opt, 1e9)
    assert opt.told[0][1][-1].epoch == n and opt.told[0][1][-1].last
    assert opt.told[1][1] == [EpochResult(t, n, task.values[t, n - 1], 0.0, True)]  # a lookup is fine


@pytest.mark.parametrize(
    ("ask", "message"),
    [((10_000, 1), "candidates 0..21"), ((0, 0), "epochs of task A are 1..9"), ((0, 10), "are 1..9")],
)
def test_asks_outside_the_task_are_errors(task: Task, ask: tuple[int, int], message: str) -> None:
    with pytest.raises(ReplayError, match=message):
        replay(task, Scripted(task.view, [ask]), 1e9)


def test_budget_cuts_epochs_that_would_finish_late(task: Task) -> None:
    i = ok(task)
    cum = np.cumsum(task.cost[i])
    budget = float((cum[3] + cum[4]) / 2)
    traj = replay(task, Scripted(task.view, [(i, 9)]), budget)
    assert traj.epoch.tolist() == [1, 2, 3, 4] and traj.stop == "budget" and traj.end_time == budget
    assert (traj.time <= budget).all()


def test_fixed_overhead_is_charged_once_per_step(task: Task) -> None:
    i, j = ok(task, 0), ok(task, 1)
    traj = replay(task, Scripted(task.view, [(i, 2), (j, 1)]), 1e9, overhead=10.0)
    c = task.cost
    np.testing.assert_allclose(traj.time, [10 + c[i, 0], 10 + c[i, 0] + c[i, 1], 20 + c[i, :2].sum() + c[j, 0]])
    assert traj.overhead_s == 20.0 and traj.overhead == "10.0"


def test_measured_overhead_uses_the_injected_timer(task: Task) -> None:
    ticks = itertools.count()
    clock = SimulatedClock(timer=lambda: float(next(ticks)))  # every timer call: +1 s
    i = ok(task)
    traj = replay(task, Scripted(task.view, [(i, 2)]), 1e9, overhead="measured", clock=clock)
    # ask: 1 s before training; on_epoch 1 overlaps the second epoch (1 s < its cost); tell after the last.
    np.testing.assert_allclose(traj.time, [1 + task.cost[i, 0], 1 + task.cost[i, :2].sum()])
    assert traj.overhead_s == 5.0  # ask 1 + on_epoch 1 + on_epoch 1 + tell 1 + the final ask that said None 1


def test_on_epoch_false_stops_the_step_early(task: Task) -> None:
    i = ok(task)
    opt = Scripted(task.view, [(i, 9)], stop_after=3)
    traj = replay(task, opt, 1e9)
    assert traj.epoch.tolist() == [1, 2, 3] and [r.epoch for r in opt.told[0][1]] == [1, 2, 3]


def test_workers_train_in_parallel_in_time_order(task: Task) -> None:
    i, j = ok(task, 0), ok(task, 1)
    opt = Scripted(task.view, [(i, 3), (j, 3)])
    traj = replay(task, opt, 1e9, n_workers=2)
    events = sorted(
        [(float(t), i, e + 1) for e, t in enumerate(np.cumsum(task.cost[i, :3]))]
        + [(float(t), j, e + 1) for e, t in enumerate(np.cumsum(task.cost[j, :3]))]
    )
    assert list(zip(traj.time.tolist(), traj.pipeline.tolist(), traj.epoch.tolist(), strict=True)) == events
    assert np.all(np.diff(traj.time) >= 0)


def test_asking_for_a_pipeline_in_training_is_an_error(task: Task) -> None:
    i = ok(task)
    with pytest.raises(ReplayError, match="which a worker is training now"):
        replay(task, Scripted(task.view, [(i, 3), (i, 5)]), 1e9, n_workers=2)


class Waits(BaseOptimizer):
    """Says None while its one step is in flight, then asks once more."""

    def __init__(self, view: SearchView):
        super().__init__(view, 0)
        self.plan: list[tuple[int, int] | None] = [(0, 2), None, (1, 1)]
        self.waited = 0

    def ask(self) -> Ask | None:
        if self.plan and self.plan[0] is None:
            if self.pending:
                self.waited += 1
                return None
            self.plan.pop(0)
        if not self.plan:
            return None
        step = self.plan.pop(0)
        assert step is not None
        return self.issue(*step)


def test_none_while_workers_train_means_wait(task: Task) -> None:
    opt = Waits(task.view)
    traj = replay(task, opt, 1e9, n_workers=3)
    assert traj.pipeline.tolist() == [0, 0, 1] and opt.waited == 1  # asked again only after the tell
    assert traj.time[2] == pytest.approx(task.cost[0, :2].sum() + task.cost[1, 0])


def test_same_seed_and_policy_give_identical_trajectories(task: Task) -> None:
    cases: list[tuple[str, int, OverheadSpec]] = [
        ("random_search", 1, "none"),
        ("hyperband", 3, 2.5),
        ("bohb", 2, "none"),
    ]
    for method, workers, overhead in cases:
        a = replay(task, make_optimizer(method, task.view, 7), 2000.0, n_workers=workers, overhead=overhead)
        b = replay(task, make_optimizer(method, task.view, 7), 2000.0, n_workers=workers, overhead=overhead)
        assert trajectories_equal(a, b) and a.time.size > 0
        assert a.time.tobytes() == b.time.tobytes()


def test_overhead_policies_parse() -> None:
    assert OverheadPolicy.parse("none") == OverheadPolicy("none")
    assert OverheadPolicy.parse("Measured").kind == "measured"
    assert OverheadPolicy.parse("1.5") == OverheadPolicy("fixed", 1.5) == OverheadPolicy.parse(1.5)
    for bad in ("sometimes", -1, float("inf"), True):
        with pytest.raises(ValueError, match="overhead"):
            OverheadPolicy.parse(bad)


def test_default_budget_and_bad_arguments(task: Task) -> None:
    traj = replay(task, make_optimizer("random_search", task.view, 0))
    assert traj.budget_s == 3600.0 and traj.time.max() <= 3600.0
    with pytest.raises(ValueError, match="n_workers"):
        replay(task, make_optimizer("random_search", task.view, 0), 10.0, n_workers=0)
    with pytest.raises(ValueError, match="budget_s"):
        replay(task, make_optimizer("random_search", task.view, 0), 0.0)


class Stuck(BaseOptimizer):
    def ask(self) -> Ask | None:
        if self.highest[0] == 0:
            return self.issue(0, 1)
        return self.issue(0, 1)  # a lookup, forever


def test_an_optimizer_stuck_on_lookups_is_stopped(task: Task) -> None:
    with pytest.raises(ReplayError, match="lookups in a row"):
        replay(task, Stuck(task.view, 0), 1e9)


def test_max_steps(task: Task) -> None:
    traj = replay(task, make_optimizer("asha", task.view, 0), 1e9, max_steps=5)
    assert traj.n_steps == 5 and traj.stop == "max_steps"


def test_progress_is_called_after_every_ask_with_steps_and_simulated_time(task: Task) -> None:
    i = ok(task)
    calls: list[tuple[int, float]] = []
    traj = replay(task, Scripted(task.view, [(i, 2), (i, 3)]), 1e9, progress=lambda s, t: calls.append((s, t)))
    assert [s for s, _ in calls] == [1, 2]
    assert calls[0][1] == 0.0 and calls[1][1] == pytest.approx(traj.time[1])
