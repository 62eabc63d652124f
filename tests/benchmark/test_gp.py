"""The GP baseline (QT -M -C -G): full-budget steps, a surrogate that sees only final accuracies, determinism."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # collected (and skipped) in the core install too

from benchmark.methods.gp import GPBO, make_gp  # noqa: E402
from tests.surrogates.tiny import FAST, make_task, make_view, run_loop  # noqa: E402


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def test_every_step_trains_a_new_pipeline_to_the_full_budget():
    task = make_task("T", n=14, epochs=6, seed=0)
    opt = make_gp(make_view(task), seed=0, schedule=FAST)
    assert isinstance(opt, GPBO) and opt.cost_model is None
    asks = run_loop(opt, task, steps=100)
    assert [e for _, e in asks] == [6] * len(asks)
    assert sorted(i for i, _ in asks) == list(range(14))  # each pipeline once, then nothing is left
    assert opt.ask() is None and opt.fits > 0


def test_the_surrogate_sees_final_accuracies_only_no_curve_no_budget():
    task = make_task("T", n=14, epochs=6, seed=1)  # pipelines 6 and 13 stop after 3 epochs (timeouts)
    opt = make_gp(make_view(task), seed=0, schedule=FAST)
    asks = run_loop(opt, task, steps=8)
    batch = opt.training_batch()
    trained = sorted(i for i, _ in asks)
    rows, finals = opt.final_values()
    assert rows.tolist() == trained and len(batch) == len(trained)
    np.testing.assert_allclose(finals, task.final()[rows])  # the last finite value, early stops included
    np.testing.assert_allclose(batch.y.numpy(), finals.astype(np.float32))
    assert not batch.curve.any() and bool((batch.budget == 1.0).all())
    query = opt.candidate_batch(np.arange(task.features.shape[0]))
    assert not query.curve.any() and bool((query.budget == 1.0).all())
    ei, cost = opt.scores(opt.available())
    assert cost is None and ei.shape == (opt.available().size,) and (ei >= 0).all()


def test_same_seed_same_asks_and_other_seed_other_asks():
    task = make_task("T", n=30, epochs=5, seed=2)
    runs = [run_loop(make_gp(make_view(task), seed=s, schedule=FAST), task, steps=10) for s in (3, 3, 4)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_float64_surrogate_runs_and_is_deterministic():
    task = make_task("T", n=20, epochs=4, seed=5)
    f64 = {**FAST, "dtype": "float64"}
    runs = [run_loop(make_gp(make_view(task), seed=1, schedule=f64), task, steps=8) for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0]) == 8
