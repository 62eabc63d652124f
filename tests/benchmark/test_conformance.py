"""Every registered method against the protocol: deterministic, within budget, only valid asks, diverged curves.

Parametrized over the registry, so a newly registered method is tested automatically; methods that
need torch are marked slow and skipped until their module exists.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from benchmark.protocol import Optimizer
from benchmark.registry import (
    METHODS,
    MethodSpec,
    UnknownOptionError,
    accepted_options,
    default_options,
    make_optimizer,
    method_options,
)
from benchmark.replay import replay, trajectories_equal
from benchmark.task import Task, load_tasks, make_context
from tests.benchmark.conftest import BUDGET_S


def _param(name: str) -> object:
    spec = METHODS[name]
    if spec.missing():  # an optional extra (e.g. dehb) that is not installed here
        reason = f"needs {spec.missing()}: {spec.install}"
        return pytest.param(name, id=name, marks=pytest.mark.skip(reason=reason))
    if not spec.needs_torch:
        return pytest.param(name, id=name)
    module = spec.target.partition(":")[0]
    missing = importlib.util.find_spec(module) is None
    return pytest.param(
        name,
        id=name,
        marks=[pytest.mark.slow, *([pytest.mark.skip(reason=f"{module} not written yet")] if missing else [])],
    )


ALL = [_param(n) for n in METHODS]


@pytest.fixture(scope="module")
def tasks(bench_store: Path) -> list[Task]:
    return load_tasks(bench_store, "micro")


@pytest.fixture(scope="module")
def frozen_tasks(frozen_store: Path) -> list[Task]:
    return load_tasks(frozen_store, "micro")


def tasks_of(name: str, tasks: list[Task], frozen_tasks: list[Task]) -> list[Task]:
    """The tasks a method runs on here: those of the store with frozen-backbone runs for a method that checks its
    tasks (the Exp. 5 baselines pick such runs), the plain test store for the others."""
    return frozen_tasks if METHODS[name].check is not None else tasks


def budget(name: str, scale: float = 1.0) -> float:
    """Test budget: torch-based methods get a short one (their steps cost real seconds here)."""
    return BUDGET_S * scale if not METHODS[name].needs_torch else 300.0


def build(name: str, task: Task, seed: int) -> Optimizer:
    context = make_context(task.store, task.version, task.dataset, folds=3) if METHODS[name].needs_context else None
    return make_optimizer(name, task.view, seed, context)


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("name", ALL)
def test_method_conforms(name: str, workers: int, tasks: list[Task], frozen_tasks: list[Task]) -> None:
    task = tasks_of(name, tasks, frozen_tasks)[0]
    opt = build(name, task, seed=11)
    assert isinstance(opt, Optimizer)
    # replay raises ReplayError on any ask outside the task, beyond a finished curve or of a busy pipeline
    a = replay(task, opt, budget(name), n_workers=workers)
    b = replay(task, build(name, task, seed=11), budget(name), n_workers=workers)
    assert trajectories_equal(a, b), "same seed and overhead policy must give the same trajectory"
    assert a.time.size > 0, "trained nothing"
    assert (a.time <= budget(name)).all() and np.all(np.diff(a.time) >= 0)
    assert (a.epoch >= 1).all() and (a.epoch <= task.n_epochs[a.pipeline]).all()
    assert ((a.pipeline >= 0) & (a.pipeline < task.n)).all()
    # every (pipeline, epoch) is trained at most once (freeze-thaw: no epoch is paid twice)
    pairs = set(zip(a.pipeline.tolist(), a.epoch.tolist(), strict=True))
    assert len(pairs) == a.time.size
    # the incumbent is the best finite accuracy seen; diverged (nan) epochs never count
    finite = np.where(np.isnan(a.value), -np.inf, a.value)
    inc = np.maximum.accumulate(finite)
    np.testing.assert_array_equal(np.where(np.isinf(inc), np.nan, inc), a.incumbent)
    assert ((a.regret >= 0) & (a.regret <= 1)).all()


@pytest.mark.parametrize("name", ALL)
def test_method_copes_with_mostly_diverged_and_truncated_curves(
    name: str, tasks: list[Task], frozen_tasks: list[Task]
) -> None:
    """Runs on every dataset for a long budget: the store has diverged and truncated curves everywhere."""
    own = tasks_of(name, tasks, frozen_tasks)
    for task in own if not METHODS[name].needs_torch else own[:1]:
        traj = replay(task, build(name, task, seed=0), budget(name, 4.0), n_workers=2)
        assert np.isfinite(traj.incumbent[-1])
        for k in np.flatnonzero(np.isnan(traj.value)):  # a diverged epoch never changes the incumbent
            assert k == 0 or np.array_equal(traj.incumbent[k], traj.incumbent[k - 1], equal_nan=True)


@pytest.mark.parametrize("name", list(METHODS))
def test_unknown_options_are_rejected_naming_the_accepted_ones(name: str, tasks: list[Task]) -> None:
    if METHODS[name].needs_torch:
        pytest.importorskip("torch")
    for module in METHODS[name].requires:
        pytest.importorskip(module)
    accepted = accepted_options(name)
    # the registered variant's options and the recorded defaults are options the factory takes
    assert set(METHODS[name].options) <= set(accepted) and set(default_options(name)) <= set(accepted)
    named = re.escape(f"'{name}' has no option ['etaa']; its options are {accepted}")
    with pytest.raises(UnknownOptionError, match=named):
        make_optimizer(name, tasks[0].view, 0, None, etaa=2)  # checked before the factory runs (no context needed)
    with pytest.raises(UnknownOptionError, match="etaa"):
        method_options(name, {"etaa": 2})


def test_optimizers_built_directly_reject_unknown_options(tasks: list[Task]) -> None:
    from benchmark.methods.asha import ASHA

    with pytest.raises(TypeError, match=r"ASHA got options it does not take: \['etaa'\]"):
        ASHA(tasks[0].view, 0, etaa=2)
    assert ASHA(tasks[0].view, 0, eta=2).eta == 2


def test_a_method_whose_optional_package_is_missing_fails_naming_it_and_the_install() -> None:
    spec = MethodSpec("benchmark.methods.dehb_tabular:DEHB", requires=("no_such_package_xyz",), install="pip it")
    assert spec.missing() == ["no_such_package_xyz"]
    with pytest.raises(ImportError, match=r"needs the optional package\(s\) \['no_such_package_xyz'\]: pip it"):
        spec.load()
    assert METHODS["dehb"].requires == ("dehb",) and "dehb==0.1.2" in METHODS["dehb"].install
