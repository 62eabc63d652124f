"""Tasks: candidates, curve normalisation, freeze-thaw queries, regret anchors, meta-learning folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmark.task import TaskError, default_budget, list_datasets, load_tasks, make_context
from metagen.store import StoreReader
from tests.benchmark.conftest import MAX_EPOCHS, build_store


def test_candidates_are_pipelines_with_epochs_once_each(bench_store: Path) -> None:
    (task,) = load_tasks(bench_store, "micro", ["A"])
    arrays = StoreReader(bench_store).curve_arrays("A", "micro")
    assert len(arrays.run_ids) == 25  # 24 pipelines + one repeated with another seed
    assert task.n == 22  # the repeat and the two failed runs (no epoch) are not candidates
    assert len(set(task.view.pipeline_ids)) == task.n
    assert "micro-A-024" not in task.run_ids and "micro-A-010" not in task.run_ids
    assert task.values.shape == task.cost.shape == (task.n, MAX_EPOCHS) == (task.n, task.view.max_epochs)
    assert task.view.features.shape == (task.n, len(task.view.feature_names))
    assert task.view.feature_names[0].startswith("model=")
    assert task.view.meta_features == {"train_size": 480.0, "num_classes": 20.0, "resolution": 128.0, "channels": 3.0}
    assert not task.values.flags.writeable and not task.view.features.flags.writeable


def test_every_task_of_a_version_has_the_same_feature_columns(bench_store: Path) -> None:
    a, b, c = load_tasks(bench_store, "micro")
    assert a.view.feature_names == b.view.feature_names == c.view.feature_names
    assert [t.dataset for t in (a, b, c)] == ["A", "B", "C"] == list_datasets(bench_store, "micro")
    assert b.view.meta_features["train_size"] == 580.0


def test_curves_end_at_divergence_and_truncation(bench_store: Path) -> None:
    (task,) = load_tasks(bench_store, "micro", ["A"])
    for i in range(task.n):
        n = task.n_epochs[i]
        assert np.isnan(task.values[i, n:]).all() and np.isnan(task.cost[i, n:]).all()
        assert np.isfinite(task.cost[i, :n]).all()
        if task.status[i] == "diverged":
            assert np.isnan(task.values[i, n - 1]) and np.isfinite(task.values[i, : n - 1]).all()
        else:
            assert np.isfinite(task.values[i, :n]).all()
    assert {"ok", "timeout", "diverged"} == set(task.status)
    assert (task.n_epochs[task.status == "timeout"] < MAX_EPOCHS).all()


def test_query_charges_only_new_epochs_and_lookups_are_free(bench_store: Path) -> None:
    (task,) = load_tasks(bench_store, "micro", ["A"])
    i = int(np.flatnonzero(task.status == "ok")[0])
    first = task.query(i, 3)
    assert first.cost == pytest.approx(task.cost[i, :3].sum()) and (first.start, first.end) == (0, 3)
    assert first.value == task.values[i, 2] and not first.last
    more = task.query(i, 5, highest=3)
    assert more.cost == pytest.approx(task.cost[i, 3:5].sum()) and more.value == task.values[i, 4]
    lookup = task.query(i, 2, highest=5)
    assert lookup.cost == 0.0 and lookup.value == task.values[i, 1] and lookup.end == 2
    full = task.query(i, MAX_EPOCHS, highest=5)
    assert full.last and full.end == MAX_EPOCHS
    t = int(np.flatnonzero(task.status == "timeout")[0])
    cut = task.query(t, MAX_EPOCHS)
    assert cut.last and cut.end == task.n_epochs[t] < MAX_EPOCHS
    assert cut.cost == pytest.approx(np.nansum(task.cost[t]))
    with pytest.raises(IndexError, match="not a candidate"):
        task.query(task.n, 1)


def test_regret_anchors_are_the_best_and_worst_epoch_of_any_run(bench_store: Path) -> None:
    (task,) = load_tasks(bench_store, "micro", ["B"])
    raw = StoreReader(bench_store).curve_arrays("B", "micro").values
    assert task.best == pytest.approx(np.nanmax(raw)) and task.worst == pytest.approx(np.nanmin(raw))
    assert task.regret(task.best) == 0.0 and task.regret(task.worst) == 1.0 and task.regret(float("nan")) == 1.0
    mid = (task.best + task.worst) / 2
    np.testing.assert_allclose(task.regret(np.array([mid, np.nan])), [0.5, 1.0])


def test_clear_errors_for_missing_store_version_and_dataset(bench_store: Path, tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="not a learning-curve store"):
        load_tasks(tmp_path / "nowhere", "micro")
    with pytest.raises(TaskError, match=r"version 'mini' not in store .*versions there: \['micro'\]"):
        load_tasks(bench_store, "mini")
    with pytest.raises(TaskError, match=r"datasets \['Z'\] not in version 'micro'.*available: \['A', 'B', 'C'\]"):
        load_tasks(bench_store, "micro", ["A", "Z"])
    assert default_budget("micro") == 3600 and default_budget("mini") == 14400 and default_budget("extended") == 57600
    with pytest.raises(TaskError, match="pass budget_s"):
        default_budget("mine")


def test_a_changed_store_is_read_again(tmp_path: Path) -> None:
    root = build_store(tmp_path / "s", datasets=("A",), n_pipelines=6)
    assert [t.dataset for t in load_tasks(root, "micro")] == ["A"]
    build_store(root, datasets=("B",), n_pipelines=6)
    assert [t.dataset for t in load_tasks(root, "micro")] == ["A", "B"]


def test_context_holds_out_the_task_fold_and_is_deterministic(tmp_path: Path) -> None:
    root = build_store(tmp_path / "s", datasets=tuple("ABCDEFGHIJ"), n_pipelines=3)
    contexts = {d: make_context(root, "micro", d, folds=5, seed=3) for d in "ABCDEFGHIJ"}
    for d, ctx in contexts.items():
        assert d not in ctx.train_datasets and d not in ctx.valid_datasets
        assert not set(ctx.train_datasets) & set(ctx.valid_datasets)
        assert len(ctx.train_datasets) == 6 and len(ctx.valid_datasets) == 2  # 10 datasets, 5 folds of 2
        assert ctx == make_context(root, "micro", d, folds=5, seed=3)
    assert len({c.fold for c in contexts.values()}) == 5
    small = make_context(root, "micro", "A", folds=2)
    assert small.valid_datasets == () and len(small.train_datasets) == 5
    with pytest.raises(TaskError, match="not in version"):
        make_context(root, "micro", "Z")


def test_context_needs_two_datasets(tmp_path: Path) -> None:
    root = build_store(tmp_path / "s", datasets=("A",), n_pipelines=3)
    with pytest.raises(TaskError, match="at least 2"):
        make_context(root, "micro", "A")


def _reference_splits(keys: list[str], split: int, seed: int = 42) -> dict[str, list[str]]:
    """Quick-Tune's ``PerformanceMetaLearner.get_splits`` for split ``split`` (``META_SPLITS``), written as the
    original is: the meta-dataset's dataset keys (``get_datasets``: eval_top1.json's key order) shuffled in place."""
    train, test, val = {0: ((0, 1, 2), (3,), (4,)), 1: ((1, 2, 3), (4,), (0,)), 2: ((2, 3, 4), (0,), (1,)),
                        3: ((3, 4, 0), (1,), (2,)), 4: ((4, 0, 1), (2,), (3,))}[split]  # fmt: skip
    datasets = list(keys)
    np.random.default_rng(seed).shuffle(datasets)
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for i, dataset in enumerate(datasets):
        part = "train" if i % 5 in train else "test" if i % 5 in test else "val" if i % 5 in val else ""
        splits[part].append(dataset.rsplit("/", 1)[-1])
    return splits


def test_imported_quicktune_data_gets_the_papers_folds(tmp_path: Path) -> None:
    from metagen.store.importers import import_quicktune
    from metagen.store.layout import dataset_keys
    from tests.store.test_importers import qt_args, qt_curves, write_aggregated

    # the order os.listdir gave the original aggregation: not sorted, across the three sets
    codes = ["PNU", "BCT", "DOG", "TEX_ALOT", "FLW", "APL", "AWA", "SPT", "INS", "MD_5_BIS", "RSICB", "PRT"]
    sets = [f"set{i % 3}" for i in range(len(codes))]
    keys = [f"mtlbm/micro/{s}/{c}" for s, c in zip(sets, codes, strict=True)]
    runs = {f"r{i}": (k, qt_args(k, epochs=2), qt_curves([30.0, 40.0 + i])) for i, k in enumerate(keys)}
    write_aggregated(tmp_path / "qt", runs=runs, meta=False)
    import_quicktune(tmp_path / "qt", tmp_path / "store")
    store = tmp_path / "store"
    assert dataset_keys(store, "micro") == tuple(keys)
    for code in codes:
        ctx = make_context(store, "micro", code, folds=5)
        want = _reference_splits(keys, ctx.fold)
        assert code in want["test"]
        assert sorted(ctx.train_datasets) == sorted(want["train"]) and sorted(ctx.valid_datasets) == sorted(want["val"])
    # sorting the names instead (what stores without recorded keys do) gives other folds
    sorted_keys = sorted(keys, key=lambda k: k.rsplit("/", 1)[-1])
    assert any(_reference_splits(keys, k)["test"] != _reference_splits(sorted_keys, k)["test"] for k in range(5))
