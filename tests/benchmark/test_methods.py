"""The methods' own rules: schedules, promotions, the KDE, the mixed space, default-HP baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmark.methods.asha import ASHA, asha_rungs
from benchmark.methods.baselines import (
    DEFAULT_HYPERPARAMETERS,
    STRATEGIES,
    BestOnAverage,
    DefaultModel,
    FrozenBackbone,
    default_candidate,
    strategy_rows,
)
from benchmark.methods.bohb import BOHB
from benchmark.methods.hyperband import Bracket, Hyperband, bracket_sizes, hyperband_budgets
from benchmark.methods.kde import MixedKDE, log_ratio
from benchmark.methods.random_search import RandomSearch
from benchmark.methods.space import encode_hyperparameters_row, mixed_space
from benchmark.protocol import Ask, EpochResult, SearchView
from benchmark.registry import make_optimizer
from benchmark.replay import replay
from benchmark.task import Task, load_tasks, make_context
from tests.benchmark.conftest import MODELS, build_store


@pytest.fixture(scope="module")
def task(bench_store: Path) -> Task:
    return load_tasks(bench_store, "micro", ["A"])[0]


def drive(task: Task, opt, steps: int) -> list[Ask]:
    """Runs ``opt`` sequentially for ``steps`` asks against the task, returning the asks."""
    asks = []
    for _ in range(steps):
        a = opt.ask()
        if a is None:
            break
        asks.append(a)
        h = int(opt.highest[a.pipeline])
        end = min(a.epoch, int(task.n_epochs[a.pipeline]))
        results = [
            EpochResult(a.pipeline, e, float(task.values[a.pipeline, e - 1]), 1.0, e == task.n_epochs[a.pipeline])
            for e in range(h + 1, end + 1)
        ]
        for r in results:
            opt.on_epoch(r)
        opt.tell(a, results)
    return asks


def test_schedules() -> None:
    assert hyperband_budgets(50) == (2, 6, 17, 50)
    assert hyperband_budgets(9) == (1, 3, 9) and hyperband_budgets(1) == (1,)
    assert bracket_sizes(3, 3, 3) == (27, 9, 3, 1) and bracket_sizes(0, 3, 3) == (4,)
    assert bracket_sizes(2, 3, 3) == (12, 4, 1)
    assert asha_rungs(50) == (1, 3, 9, 27, 50) and asha_rungs(9) == (1, 3, 9) and asha_rungs(1) == (1,)
    with pytest.raises(ValueError, match="eta > 1"):
        hyperband_budgets(50, eta=1)


def test_random_search_tries_each_candidate_once_at_full_budget(task: Task) -> None:
    asks = drive(task, RandomSearch(task.view, 3), 100)
    assert len(asks) == task.n and sorted(a.pipeline for a in asks) == list(range(task.n))
    assert {a.epoch for a in asks} == {task.view.max_epochs}
    assert [a.pipeline for a in drive(task, RandomSearch(task.view, 3), 5)] == [a.pipeline for a in asks[:5]]


def test_hyperband_runs_successive_halving_brackets(task: Task) -> None:
    opt = Hyperband(task.view, 0)  # 9 epochs: budgets 1, 3, 9; first bracket 9 x 1, 3 x 3, 1 x 9
    asks = drive(task, opt, 12)
    assert [a.epoch for a in asks] == [1] * 9 + [3] * 3
    first = [a.pipeline for a in asks[:9]]
    assert len(set(first)) == 9

    def at(c: int, budget: int) -> float:
        return float(np.nan_to_num(task.values[c, min(budget, task.n_epochs[c]) - 1], nan=-np.inf))

    best3 = sorted(first, key=lambda c: (-at(c, 1), first.index(c)))[:3]
    assert [a.pipeline for a in asks[9:12]] == best3
    winner = max(best3, key=lambda c: (at(c, 3), -best3.index(c)))
    nxt = drive(task, opt, 6)
    if task.n_epochs[winner] > 3:  # the winner continues to 9 epochs ...
        assert nxt[0] == Ask(winner, 9)
        nxt = nxt[1:]
    # ... unless its curve already ended (then it needs no training); next: bracket s=1, 5 new x 3 epochs
    assert [a.epoch for a in nxt[:5]] == [3] * 5
    assert not {a.pipeline for a in nxt[:5]} & set(first)


def test_hyperband_finishes_when_no_candidate_can_train(task: Task) -> None:
    traj = replay(task, Hyperband(task.view, 1), float("inf"))
    assert traj.stop == "exhausted"
    trained = set(traj.pipeline.tolist())
    assert trained == set(range(task.n))


def test_asha_promotes_the_best_of_each_third(task: Task) -> None:
    opt = ASHA(task.view, 0)
    asks = drive(task, opt, 4)
    assert [a.epoch for a in asks] == [1, 1, 1, 3]
    first3 = [a.pipeline for a in asks[:3]]
    assert asks[3].pipeline == max(first3, key=lambda c: np.nan_to_num(task.values[c, 0], nan=-np.inf))
    traj = replay(task, ASHA(task.view, 0), float("inf"))
    assert traj.stop == "exhausted" and set(traj.pipeline.tolist()) == set(range(task.n))
    assert opt.rungs == (1, 3, 9)


def toy_task(n: int = 60, epochs: int = 9, seed: int = 0) -> Task:
    """A task with 3 hyperparameters (model of 2, lr on a 6-value grid, a flag); accuracy grows with lr."""
    rng = np.random.default_rng(seed)
    model = rng.integers(0, 2, n)
    lr = rng.integers(0, 6, n).astype(float)
    flag = rng.integers(0, 2, n).astype(float)
    features = np.c_[model == 0, model == 1, 10.0**-lr, flag].astype(float)
    final = 0.2 + 0.12 * (5 - lr) + 0.02 * flag
    values = final[:, None] * (1 - np.exp(-np.arange(1, epochs + 1)[None, :] / 2.0))
    view = SearchView(
        name="toy", version="micro", pipeline_ids=tuple(f"p{i}" for i in range(n)),
        models=tuple(f"m{m}" for m in model), features=features,
        feature_names=("model=m0", "model=m1", "lr", "flag"), max_epochs=epochs,
    )  # fmt: skip
    return Task(view, values, np.full((n, epochs), 10.0), np.full(n, epochs), np.full(n, "ok"), np.arange(n),
                float(values.max()), float(values.min()))  # fmt: skip


def test_bohb_builds_a_model_and_proposes_by_density_ratio() -> None:
    task = toy_task()
    for acquisition in ("sample", "all"):
        opt = BOHB(task.view, 0, random_fraction=0.0, acquisition=acquisition)
        assert opt.space.d == 3 and opt.min_points == 4
        drive(task, opt, 60)
        assert opt.models, "no KDE model was ever built"
        model = opt._model()
        assert model is not None
        good, bad = model
        bracket = Bracket(0, (task.view.max_epochs,), [1])  # BOHB's choice does not depend on the bracket
        pool = np.arange(task.n)
        scores = log_ratio(good, bad, opt.space.points[pool])
        if acquisition == "all":
            assert opt.choose(pool, bracket) == int(np.argmax(scores))
        # the model prefers large learning rates (small ordinal of 10**-lr sorted ascending = high index)
        lr_dim = [d.name for d in opt.space.dims].index("lr")
        high = opt.space.points[:, lr_dim] >= 0.8
        assert scores[high].mean() > scores[~high].mean()
        picks = [opt.choose(pool, bracket) for _ in range(20)]
        assert np.mean(high[picks]) > 0.5
    default = BOHB(toy_task().view, 0)
    assert default.min_points == default.space.d + 1 == 4


def test_bohb_counts_its_model_and_random_proposals() -> None:
    task = toy_task()
    opt = BOHB(task.view, 0, random_fraction=0.0)
    assert opt.stats() == {"model_proposals": 0, "random_proposals": 0, "proposals": 0}
    drive(task, opt, 60)
    stats = opt.stats()
    # before the first model every proposal is random, afterwards (random_fraction=0) every one is the model's
    assert stats["random_proposals"] >= opt.min_points and stats["model_proposals"] > 0
    assert stats["proposals"] == stats["model_proposals"] + stats["random_proposals"]
    never = BOHB(task.view, 0, min_points_in_model=10_000)  # the model never exists
    drive(task, never, 60)
    assert never.stats()["model_proposals"] == 0 and never.stats()["random_proposals"] > 0


def test_kde_matches_a_direct_product_kernel_sum() -> None:
    rng = np.random.default_rng(0)
    cont = np.array([True, False, True])
    levels = np.array([0, 4, 0])
    data = np.c_[rng.random(7), rng.integers(0, 4, 7), rng.random(7)]
    kde = MixedKDE.fit(data, cont, levels)
    x = np.c_[rng.random(5), rng.integers(0, 4, 5), rng.random(5)]
    expected = []
    for p in x:
        total = 0.0
        for row in data:
            k = 1.0
            for j in range(3):
                h = kde.bw[j]
                if cont[j]:
                    k *= np.exp(-0.5 * ((p[j] - row[j]) / h) ** 2) / (h * np.sqrt(2 * np.pi))
                else:
                    k *= (1 - h) if p[j] == row[j] else h / (levels[j] - 1)
            total += k
        expected.append(np.log(total / len(data)))
    np.testing.assert_allclose(kde.log_pdf(x), expected, rtol=1e-10)
    std_rule = 1.06 * data.std(axis=0) * 7 ** (-1 / 7)
    np.testing.assert_allclose(kde.bw[cont], np.maximum(std_rule[cont], 1e-3))
    assert kde.bw[1] <= 3 / 4
    samples = kde.sample(rng, 200)
    assert ((samples[:, cont] >= 0) & (samples[:, cont] <= 1)).all()
    assert set(np.unique(samples[:, 1])) <= {0.0, 1.0, 2.0, 3.0}
    assert log_ratio(kde, kde, x) == pytest.approx(np.zeros(5))


def test_mixed_space_has_one_dimension_per_hyperparameter(task: Task) -> None:
    space = mixed_space(task.view)
    names = [d.name for d in space.dims]
    assert names[0] == "model" and len(names) == len(set(names))
    assert space.dims[0].n_levels == len(set(task.view.models))
    by_name = {d.name: d for d in space.dims}
    assert by_name["lr"].continuous and not by_name["opt"].continuous
    assert ((space.points[:, space.continuous] >= 0) & (space.points[:, space.continuous] <= 1)).all()
    for i in range(task.n):
        own = space.encode(np.asarray(task.view.features[i]))
        np.testing.assert_array_equal(own, space.points[i])
        assert space.distance(own, np.array([i]))[0] == 0
    assert mixed_space(task.view) is space  # cached per view


def test_default_candidate_is_the_default_pipeline(task: Task) -> None:
    assert task.view.models[0] == MODELS[0]
    assert default_candidate(task.view, "xcit_small_12_p8_384_dist") == 0  # pipeline 0 has the defaults
    row = encode_hyperparameters_row({**DEFAULT_HYPERPARAMETERS, "model": MODELS[0]}, task.view.feature_names)
    np.testing.assert_array_equal(row, task.view.features[0])
    dla = default_candidate(task.view, "dla46x_c")
    assert task.view.models[dla] == "dla46x_c.in1k"
    opt = DefaultModel(task.view, 0, model="dla46x_c.in1k")
    assert opt.ask() == Ask(dla, task.view.max_epochs)
    with pytest.raises(ValueError, match="no candidate in task A"):
        DefaultModel(task.view, 0, model="beit_large_patch16_512")


def test_best_on_average_picks_the_best_default_model_on_training_data(tmp_path: Path) -> None:
    root = build_store(tmp_path / "s", datasets=("A", "B", "C", "D"), n_pipelines=12)
    ctx = make_context(root, "micro", "A", folds=2)
    (task,) = load_tasks(root, "micro", ["A"])
    opt = BestOnAverage(task.view, 0, ctx)
    train = load_tasks(root, "micro", list(ctx.train_datasets))
    expected = {}
    for m in sorted(set(task.view.models)):
        regrets: list[float] = []
        for t in train:
            i = default_candidate(t.view, m)
            regrets.append(float(t.regret(t.values[i, t.n_epochs[i] - 1])))
        expected[m] = float(np.mean(regrets))
    assert opt.scores == pytest.approx(expected)
    assert opt.model == min(sorted(expected), key=expected.__getitem__)
    assert opt.ask() == Ask(default_candidate(task.view, opt.model), task.view.max_epochs) and opt.ask() is None
    with pytest.raises(ValueError, match="needs a MetaContext"):
        BestOnAverage(task.view, 0, None)


def test_frozen_backbone_baselines_pick_their_runs(frozen_store: Path) -> None:
    (task,) = load_tasks(frozen_store, "micro", ["A"])
    view, names = task.view, list(task.view.feature_names)
    assert {"lora_rank", "lora_alpha", "lora_targets=qkv"} <= set(names)  # the encoding shows LoRA runs
    rank = view.features[:, names.index("lora_rank")]
    lp, lora = strategy_rows(view, "linear_probe"), strategy_rows(view, "lora")
    assert lora.size == 3 and (rank[lora] > 0).all()
    assert lp.size >= 3 and (rank[lp] == 0).all()
    assert (view.features[np.r_[lp, lora], names.index("pct_to_freeze")] == 1.0).all()
    for strategy, rows in (("linear_probe", lp), ("lora", lora)):
        opt = make_optimizer(strategy, view, 0)
        assert isinstance(opt, FrozenBackbone) and opt.candidate in rows
        assert opt.ask() == Ask(opt.candidate, view.max_epochs) and opt.ask() is None
        assert opt.candidate == default_candidate(view, None, STRATEGIES[strategy], rows=rows)
    rank4 = make_optimizer("lora", view, 0, defaults={"lora_rank": 4})
    assert isinstance(rank4, FrozenBackbone)
    assert rank4.candidate == default_candidate(view, None, {**STRATEGIES["lora"], "lora_rank": 4}, rows=lora)
    one_model = make_optimizer("lora", view, 0, model=view.models[lora[0]])
    assert isinstance(one_model, FrozenBackbone) and view.models[one_model.candidate] == view.models[lora[0]]


def test_frozen_backbone_baselines_without_such_runs_say_so(task: Task) -> None:
    assert strategy_rows(task.view, "lora").size == 0 and "lora_rank" not in task.view.feature_names
    with pytest.raises(ValueError, match=r"method 'lora': task A \(micro\) holds no LoRA .*search_space=exp5"):
        make_optimizer("lora", task.view, 0)
