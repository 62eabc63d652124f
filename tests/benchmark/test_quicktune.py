"""Quick-Tune: cost-aware acquisition, meta-learned start, ablation flags, determinism."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # collected (and skipped) in the core install too

from benchmark.methods.graybox_bo import COST_FLOOR, select  # noqa: E402
from benchmark.methods.quicktune import QuickTune, best_model_on_average, make_quicktune  # noqa: E402
from benchmark.protocol import MetaContext  # noqa: E402
from metagen.store.synth import synthesize  # noqa: E402
from surrogates.metatrain import DEFAULT_META, REFERENCE_META, MetaTrainConfig, config_label, meta_train  # noqa: E402
from tests.surrogates.tiny import FAST, make_task, make_view, run_loop  # noqa: E402

META = MetaTrainConfig(iterations=40, batch_size=16, lr=1e-2, val_every=20, val_episodes=2, hidden=8, out_dim=8)


@pytest.fixture(scope="module")
def meta_model():
    torch.set_num_threads(1)
    train = [make_task(f"M{i}", n=30, epochs=6, seed=10 + i) for i in range(2)]
    return meta_train(train, [make_task("V", n=30, epochs=6, seed=20)], META)


def test_acquisition_prefers_the_cheaper_pipeline_when_ei_ties():
    ei = np.array([0.3, 0.3, 0.1])
    assert select(ei, np.array([5.0, 2.0, 4.0])) == 1
    assert select(ei) == 0  # without costs, ties go to the lowest index
    assert select(np.array([0.0, 1e-5]), np.array([0.0, 1.0])) == 1  # a zero cost is floored, not divided by
    assert COST_FLOOR == 1e-4


def test_cost_aware_optimizer_picks_the_cheaper_of_two_identical_pipelines(meta_model):
    task = make_task("T", n=2, epochs=6, seed=0)
    task.features[1] = task.features[0]  # same pipeline, same predicted accuracy and EI ...
    task.features[1, 8] = 32.0 if task.features[0, 8] != 32.0 else 128.0  # ... but another batch size
    opt = make_quicktune(make_view(task), 0, None, meta_model=meta_model, schedule=FAST)
    assert isinstance(opt, QuickTune) and opt.cost_model is not None
    run_loop(opt, task, 1)  # one observation to condition on
    opt.pending.clear()
    cand = np.array([0, 1])
    ei, cost = opt.scores(cand)
    assert cost is not None and cost[0] != cost[1]
    ei[:] = 0.2
    assert select(ei, cost) == int(np.argmin(cost))


def test_meta_learned_quicktune_asks_valid_pairs_and_is_deterministic(meta_model):
    task = make_task("T", n=16, epochs=6, seed=3)
    a = run_loop(make_quicktune(make_view(task), 5, None, meta_model=meta_model, schedule=FAST), task, 20)
    b = run_loop(make_quicktune(make_view(task), 5, None, meta_model=meta_model, schedule=FAST), task, 20)
    assert a == b and len(a) == 20


def test_the_meta_training_a_surrogate_starts_from_is_named_for_the_cell_output(meta_model):
    opt = make_quicktune(make_view(make_task("T", n=8, epochs=6, seed=3)), 0, None, meta_model=meta_model)
    assert opt.meta_label == f"custom-{META.digest()}"
    assert config_label(DEFAULT_META) == "default" and config_label(MetaTrainConfig()) == "default"
    assert config_label(REFERENCE_META) == "reference"


def test_float64_quicktune_starts_from_the_meta_trained_weights_and_keeps_the_float32_cost_model(meta_model):
    task = make_task("T", n=16, epochs=6, seed=3)
    f64 = {**FAST, "dtype": "float64"}
    opt = make_quicktune(make_view(task), 5, None, meta_model=meta_model, schedule=f64)
    state = opt.model.state_dict()
    assert all(v.dtype == torch.float64 for v in state.values() if v.is_floating_point())
    assert all(torch.equal(state[k], v.double()) for k, v in meta_model.perf_state.items() if v.is_floating_point())
    a = run_loop(opt, task, 20)
    assert a == run_loop(make_quicktune(make_view(task), 5, None, meta_model=meta_model, schedule=f64), task, 20)
    assert opt.cost_model is not None and opt.fits > 0


def test_without_meta_learning_cost_awareness_is_off_and_no_context_is_needed():
    task = make_task("T", n=10, epochs=4, seed=4)
    opt = make_quicktune(make_view(task), 0, None, meta_learn=False, cost_aware=True, schedule=FAST)
    assert opt.cost_model is None and opt.initial_state is None and opt.meta_label is None
    run_loop(opt, task, 10)
    with pytest.raises(ValueError, match="MetaContext"):
        make_quicktune(make_view(task), 0, None)


def test_black_box_mode_asks_full_budgets(meta_model):
    task = make_task("T", n=10, epochs=6, seed=5)
    asks = run_loop(make_quicktune(make_view(task), 0, None, meta_model=meta_model, gray_box=False, schedule=FAST),
                    task, 5)  # fmt: skip
    assert [e for _, e in asks] == [6] * 5 and len({i for i, _ in asks}) == 5


def test_hub_size_restricts_models(meta_model):
    task = make_task("T", n=30, epochs=4, seed=6)
    view = make_view(task)
    opt = make_quicktune(view, 1, None, meta_model=meta_model, hub_size=1, schedule=FAST)
    asks = run_loop(opt, task, 12)
    assert len({view.models[i] for i, _ in asks}) == 1
    with pytest.raises(ValueError, match="hub_size"):
        make_quicktune(view, 1, None, meta_model=meta_model, hub_size=0)


def test_select_model_first_tunes_the_best_model_on_average(tmp_path):
    store = tmp_path / "store"
    synthesize(store, "tiny", seed=1)
    ctx = MetaContext(str(store), "micro", ("BCT", "BRD"), ("CRS",), fold=0, cache_dir=str(tmp_path / "cache"))
    from benchmark.task import load_tasks

    task = next(t for t in load_tasks(str(store), "micro") if t.view.name == "CRS")
    chosen = best_model_on_average(ctx, sorted(set(task.view.models)))
    opt = make_quicktune(task.view, 0, ctx, meta_learn=False, select_model_first=True, schedule=FAST)
    assert {task.view.models[i] for i in np.flatnonzero(opt.allowed)} == {chosen}
