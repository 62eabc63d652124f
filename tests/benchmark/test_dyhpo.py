"""DyHPO: valid asks only, the reference's initial design and refit schedule, determinism."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # collected (and skipped) in the core install too

from benchmark.methods.dyhpo import DyHPO  # noqa: E402
from benchmark.methods.graybox_bo import SCHEDULES, RefitSchedule, expected_improvement, fidelity_incumbents  # noqa: E402
from tests.surrogates.tiny import FAST, make_task, make_view, run_loop  # noqa: E402


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def test_asks_only_valid_pipeline_epoch_pairs_one_epoch_at_a_time():
    task = make_task("T", n=12, epochs=4, seed=0)
    opt = DyHPO(make_view(task), seed=0, schedule=FAST)
    asks = run_loop(opt, task, steps=200)
    assert asks[0][1] == 1  # initial design: one random pipeline at budget 1
    seen: dict[int, int] = {}
    for i, e in asks:
        assert e == seen.get(i, 0) + 1  # next budget b + 1 (one-epoch steps)
        seen[i] = e
    # it ran out of candidates: every curve trained to its end (run_loop checks nothing past it)
    assert opt.ask() is None
    assert sum(seen.values()) == int(task.n_valid.sum())


def test_same_seed_same_asks_and_other_seed_other_asks():
    task = make_task("T", n=30, epochs=6, seed=1)
    runs = [run_loop(DyHPO(make_view(task), seed=s, schedule=FAST), task, steps=15) for s in (3, 3, 4)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_refit_schedule_resets_first_then_refines_then_restarts_on_no_improvement():
    task = make_task("T", n=20, epochs=5, seed=2)
    sched = RefitSchedule(initial_steps=3, initial_epochs=6, refine_epochs=2, patience=6, restart_mse=None)
    opt = DyHPO(make_view(task), seed=0, schedule=sched)
    run_loop(opt, task, steps=25)
    assert opt.fit_epochs[:4] == [6, 6, 6, 2]
    assert opt.fit_epochs.count(6) >= 4  # restarts after 6 observations without improvement
    assert opt.fits == len(opt.fit_epochs) and opt.mse_restarts == 0
    assert opt.patience == 6 and DyHPO(make_view(task), 0).patience == int(1.2 * 5)


def test_the_skipped_fit_on_one_observation_is_not_counted():
    task = make_task("T", n=20, epochs=5, seed=2)
    opt = DyHPO(make_view(task), seed=0, schedule={"initial_steps": 2, "initial_epochs": 6, "refine_epochs": 2})
    asks = run_loop(opt, task, steps=2)  # 1st: initial design; 2nd: fit on one observation, skipped
    assert len(asks) == 2 and opt.fits == 0 and opt.fit_epochs == [] and opt.restart
    run_loop(opt, task, steps=3)
    assert opt.fit_epochs == [6, 6, 2]  # two reset fits that trained, then refining


def test_training_mse_above_the_limit_restarts_the_next_fit():
    task = make_task("T", n=20, epochs=5, seed=2)
    sched = {"initial_steps": 2, "initial_epochs": 6, "refine_epochs": 2, "patience": 100, "restart_mse": 0.0}
    opt = DyHPO(make_view(task), seed=0, schedule=sched)
    run_loop(opt, task, steps=8)
    assert opt.fit_epochs == [6] * len(opt.fit_epochs) and opt.mse_restarts == len(opt.fit_epochs) - 1 > 0
    never = DyHPO(make_view(task), seed=0, schedule={**sched, "restart_mse": None})
    run_loop(never, task, steps=8)
    assert never.fit_epochs[2:] == [2] * (len(never.fit_epochs) - 2) and never.mse_restarts == 0


def test_the_reference_schedule_is_the_default_and_the_only_preset():
    task = make_task("T", n=20, epochs=5, seed=2)
    assert dict(SCHEDULES) == {"reference": RefitSchedule(10, 1000, 50, None, None, 1e-3)}
    assert DyHPO(make_view(task), 0).schedule == SCHEDULES["reference"]
    assert RefitSchedule().label() == "reference"
    assert RefitSchedule(refine_epochs=5).label() == "custom(refine_epochs=5)"
    assert RefitSchedule(restart_mse=0.15).label() == "custom(restart_mse=0.15)"  # upstream's commented-out rule
    for name in ("fast", "default"):
        with pytest.raises(ValueError, match=r"unknown refit schedule.*were removed"):
            DyHPO(make_view(task), 0, schedule=name)
    with pytest.raises(ValueError, match=r"unknown refit schedule fields \['epochs'\]"):
        DyHPO(make_view(task), 0, schedule={"epochs": 3})


def test_multi_fidelity_incumbent_and_ei():
    curves = np.array([[0.2, 0.4, np.nan], [0.5, np.nan, np.nan]])
    np.testing.assert_array_equal(fidelity_incumbents(curves), [0.5, 0.4, 0.5])  # budget 3: best at any budget
    ei = expected_improvement(np.array([0.5, 0.5, 0.7]), np.array([0.0, 0.1, 0.1]), np.full(3, 0.6))
    assert ei[0] == 0 and 0 < ei[1] < ei[2]


def test_float64_surrogate_is_an_option_of_the_schedule():
    task = make_task("T", n=30, epochs=6, seed=1)
    assert RefitSchedule(dtype="float64").label() == "custom(dtype=float64)"
    with pytest.raises(ValueError, match=r"dtype 'float16' must be one of \['float32', 'float64'\]"):
        DyHPO(make_view(task), 0, schedule={"dtype": "float16"})
    opt64 = DyHPO(make_view(task), seed=3, schedule={**FAST, "dtype": "float64"})
    assert {p.dtype for p in opt64.model.parameters()} == {torch.float64}
    runs = [run_loop(DyHPO(make_view(task), seed=3, schedule={**FAST, "dtype": "float64"}), task, steps=15)
            for _ in range(2)]  # fmt: skip
    assert runs[0] == runs[1] and len(runs[0]) == 15
    assert {p.dtype for p in DyHPO(make_view(task), seed=3, schedule=FAST).model.parameters()} == {torch.float32}
