"""Reading: datasets, candidate pipelines, dense arrays, encoded hyperparameters, bounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from metagen.store import StoreError, StoreReader, compact, write_run
from metagen.store.array_view import read_view, view_path
from tests.factories import make_curve, make_run


@pytest.fixture
def filled(store: Path) -> Path:
    write_run(store, make_run("a1", dataset="A"), make_curve(5, start=0.2))
    write_run(store, make_run("a2", dataset="A", lr=0.01), make_curve(3, start=0.05, cost=4.0))
    curve = make_curve(2)
    curve[1]["eval_top1"] = float("nan")
    write_run(store, make_run("a3", dataset="A", status="diverged", status_message="NaN loss"), curve)
    write_run(store, make_run("b1", dataset="B", version="mini", opt="momentum", opt_betas=None, momentum=0.9),
              make_curve(4))  # fmt: skip
    return store


def check_arrays(reader: StoreReader) -> None:
    a = reader.curve_arrays("A", "micro")
    assert a.values.shape == a.cost.shape == (3, 5)
    assert list(a.run_ids) == ["a1", "a2", "a3"] and list(a.n_epochs) == [5, 3, 2]
    np.testing.assert_allclose(a.values[0], [0.2, 0.3, 0.4, 0.5, 0.6], rtol=1e-6)
    assert np.isnan(a.values[1, 3:]).all() and np.isnan(a.values[2, 1])
    np.testing.assert_allclose(a.cost[1, :3], 4.0, rtol=1e-6)
    both = reader.version_arrays("micro")
    assert list(both) == ["A"] and np.array_equal(both["A"].values, a.values, equal_nan=True)


def test_arrays_from_loose_files_and_from_compacted_parts_agree(filled: Path) -> None:
    check_arrays(StoreReader(filled))
    compact(filled)
    check_arrays(StoreReader(filled))


def test_datasets_pipelines_and_lazy_tables(filled: Path) -> None:
    reader = StoreReader(filled)
    d = reader.datasets()
    assert d.select("dataset_version", "dataset", "n_runs", "n_epochs").rows() == [("micro", "A", 3, 10),
                                                                                   ("mini", "B", 1, 4)]  # fmt: skip
    assert reader.versions() == ["micro", "mini"]
    assert reader.pipelines("A", "micro").height == 2  # a1 and a3 are the same pipeline
    assert isinstance(reader.scan_runs(), pl.LazyFrame)
    assert reader.scan_curves("mini").collect()["run_id"].unique().to_list() == ["b1"]
    with pytest.raises(StoreError, match="no runs of dataset 'Z'"):
        reader.curve_arrays("Z", "micro")
    with pytest.raises(StoreError, match="unknown metric"):
        reader.curve_arrays("A", "micro", metric="accuracy")


def test_same_pipeline_with_two_seeds_is_one_candidate(store: Path) -> None:
    write_run(store, make_run("s0", seed=0), make_curve())
    write_run(store, make_run("s1", seed=1), make_curve())
    reader = StoreReader(store)
    assert reader.datasets()["n_pipelines"].to_list() == [1]
    assert reader.pipelines("PNU", "micro")["run_id"].to_list() == ["s0"]


def test_encoded_hyperparameters(filled: Path) -> None:
    enc = StoreReader(filled).encoded_hyperparameters()
    assert enc.columns[:4] == ["run_id", "pipeline_id", "model=dla46x_c.in1k", "data_augmentation=None"]
    row = enc.filter(pl.col("run_id") == "b1").row(0, named=True)
    assert row["opt=momentum"] == 1.0 and row["momentum"] == 0.9 and row["momentum=None"] == 0.0
    assert row["opt_betas=None"] == 1.0
    a1 = enc.filter(pl.col("run_id") == "a1").row(0, named=True)
    assert a1["momentum"] == 0.0 and a1["momentum=None"] == 1.0  # inactive, explicitly marked
    assert all(dtype == pl.Float64 for dtype in enc.schema.dtypes()[2:])


def test_bounds_ignore_nan(filled: Path) -> None:
    b = StoreReader(filled).bounds("micro").row(0, named=True)
    assert b["best"] == pytest.approx(0.6) and b["worst"] == pytest.approx(0.05)


def _assert_same_arrays(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for d in a:
        for f in ("run_ids", "pipeline_ids", "models", "status", "n_epochs"):
            assert list(getattr(a[d], f)) == list(getattr(b[d], f)), (d, f)
        assert np.array_equal(a[d].values, b[d].values, equal_nan=True)
        assert np.array_equal(a[d].cost, b[d].cost, equal_nan=True)


def test_array_view_is_built_by_compact_and_matches_the_parts(filled: Path) -> None:
    slow = StoreReader(filled).version_arrays("micro")  # loose files: no view
    compact(filled)
    assert view_path(filled, "micro").exists() and view_path(filled, "mini").exists()
    _assert_same_arrays(StoreReader(filled).version_arrays("micro"), slow)


def test_stale_or_damaged_array_view_is_ignored(filled: Path) -> None:
    compact(filled)
    expected = StoreReader(filled).version_arrays("micro")
    write_run(filled, make_run("a9", dataset="A"), make_curve(2))  # a loose run: the view is stale
    fresh = StoreReader(filled).version_arrays("micro")
    assert "a9" in list(fresh["A"].run_ids)
    compact(filled)  # new part token: the view is rebuilt
    assert list(StoreReader(filled).version_arrays("micro")["A"].run_ids) == list(fresh["A"].run_ids)
    view_path(filled, "micro").write_bytes(b"not arrow")
    _assert_same_arrays(StoreReader(filled).version_arrays("micro"), fresh)
    view_path(filled, "micro").unlink()
    _assert_same_arrays(StoreReader(filled).version_arrays("micro"), fresh)
    assert expected["A"].values.shape[0] + 1 == fresh["A"].values.shape[0]


def test_stale_view_token_is_not_used(filled: Path) -> None:
    compact(filled)
    keys = [("micro", "A")]
    reader = StoreReader(filled)
    token = reader._view_token(keys)
    assert read_view(filled, "micro", token) is not None
    assert read_view(filled, "micro", "another-token") is None


def test_lora_hyperparameters_are_encoded_only_where_a_version_has_them(store: Path) -> None:
    write_run(store, make_run("p1", dataset="A"), make_curve(2))
    write_run(store, make_run("p2", dataset="A", extra_hps={"pretrained": "none"}), make_curve(2))
    write_run(store, make_run("m1", dataset="A", version="mini"), make_curve(2))
    lora = {"lora_rank": 8, "lora_alpha": 16, "lora_targets": "linear"}
    write_run(store, make_run("m2", dataset="A", version="mini", pct_to_freeze=1.0, extra_hps=lora), make_curve(2))
    reader = StoreReader(store)
    plain = reader.encoded_hyperparameters("micro")
    assert not [c for c in plain.columns if c.startswith("lora")]  # no LoRA run: the encoding of before
    mini = reader.encoded_hyperparameters("mini").sort("run_id")
    cols = [c for c in mini.columns if c.startswith("lora")]
    assert cols == ["lora_rank", "lora_alpha", "lora_alpha=None", "lora_targets=linear", "lora_targets=None"]
    assert mini.select(cols).rows() == [(0.0, 0.0, 1.0, 0.0, 1.0), (8.0, 16.0, 0.0, 1.0, 0.0)]
    assert mini.drop(cols).columns == plain.columns
