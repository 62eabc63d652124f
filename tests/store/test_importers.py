"""Tests of the Quick-Tune and QTT importers on small fixtures written in the original layouts."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml

from metagen.store import StoreReader, validate
from metagen.store.errors import StoreError
from metagen.store.importers import ImportReport, ImportSourceError, import_qtt, import_quicktune
from metagen.store.importers.common import categorical_value, current_model_name
from metagen.store.importers.quicktune import CURVE_NAMES
from metagen.store.layout import compacted_parts, read_metadata

NAN = float("nan")
QT_CURVES = CURVE_NAMES

# --------------------------------------------------------------------------------------------
# Fixture builders
# --------------------------------------------------------------------------------------------


def qt_args(dataset: str, **overrides: Any) -> dict[str, Any]:
    """Args as finetune.py dumps them: every parser key, inactive conditionals at parser defaults."""
    args = {
        "dataset": dataset,
        "experiment": "exp",
        "model": "dla46x_c",
        "pct_to_freeze": 0.8,
        "layer_decay": None,
        "linear_probing": False,
        "stoch_norm": True,
        "sp_reg": 0.0001,
        "delta_reg": 0.0,
        "bss_reg": 0.001,
        "cotuning_reg": 0.5,
        "mixup": 0.2,
        "mixup_prob": 0.25,
        "cutmix": 0.1,
        "drop": 0.1,
        "smoothing": 0.05,
        "clip_grad": None,
        "trivial_augment": False,
        "random_augment": False,
        "auto_augment": None,
        "ra_num_ops": 2,
        "ra_magnitude": 8,
        "opt": "adam",
        "opt_betas": [0.9, 0.999],
        "momentum": 0.9,
        "lr": 0.001,
        "warmup_lr": 1e-05,
        "warmup_epochs": 5,
        "weight_decay": 0.01,
        "batch_size": 32,
        "amp": False,
        "sched": "cosine",
        "patience_epochs": 10,
        "decay_rate": 0.1,
        "decay_epochs": 90.0,
        "epochs": 50,
        "seed": 3,
        "num_classes": 20,
        "device": "cuda",
        "project_name": "qt",
    }
    args.update(overrides)
    return args


def qt_curves(top1: list[float], train_loss: list[float] | None = None) -> dict[str, list[float]]:
    """All ten Quick-Tune curves of one run, accuracies in percent."""
    n = len(top1)
    return {
        "epoch": [float(i) for i in range(n)],
        "train_loss": train_loss or [2.0 - 0.1 * i for i in range(n)],
        "train_head_grad_norm": [1.0 + i for i in range(n)],
        "train_backbone_grad_norm": [0.5 + i for i in range(n)],
        "train_time": [10.0 + i for i in range(n)],
        "eval_loss": [1.5 - 0.1 * i for i in range(n)],
        "eval_top1": top1,
        "eval_top5": [min(100.0, t + 20.0) if not math.isnan(t) else NAN for t in top1],
        "eval_time": [2.0] * n,
        "lr": [0.001] * n,
    }


PNU, BRD = "mtlbm/micro/set1/PNU", "mtlbm/micro/set0/BRD"

# run id -> (dataset key, args, curves)
QT_RUNS: dict[str, tuple[str, dict[str, Any], dict[str, list[float]]]] = {
    # full budget of 3 epochs; step schedule makes decay_* active; trivial augment; no clipping
    "run_ok": (
        PNU,
        qt_args(
            PNU,
            epochs=3,
            sched="step",
            decay_epochs=20.0,
            decay_rate=0.5,
            trivial_augment=True,
            max_memory_allocated=123456789,
            final_batch_size=16,
            invalid_loss_value=False,
        ),
        qt_curves([10.0, 50.0, 75.5]),
    ),
    # truncated: 2 of 50 epochs; momentum active; RandAugment; the sched string "None"
    "run_short": (
        PNU,
        qt_args(PNU, opt="momentum", momentum=0.95, random_augment=True, ra_num_ops=3, ra_magnitude=17, sched="None"),
        qt_curves([20.0, 30.0]),
    ),
    # NaN training loss at epoch 2 of 3: diverged, kept up to epoch 2; auto_augment policy
    "run_nan": (
        BRD,
        qt_args(BRD, epochs=3, auto_augment="v0", clip_grad=10.0, invalid_loss_value=True),
        qt_curves([40.0, 5.0, 5.0], train_loss=[2.0, NAN, NAN]),
    ),
    # plateau schedule; 'None' strings as the aggregator writes them
    "run_plateau": (
        BRD,
        qt_args(BRD, epochs=3, sched="plateau", patience_epochs=5, opt="sgd", opt_betas="None", layer_decay=0.65),
        qt_curves([60.0, 61.0, 62.0]),
    ),
}


def write_aggregated(base: Path, version: str = "micro", runs: dict | None = None, meta: bool = True) -> None:
    """Write the aggregated layout: <base>/<version>/<curve>.json + args.json (+ meta-features)."""
    runs = QT_RUNS if runs is None else runs
    directory = base / version
    directory.mkdir(parents=True)
    for name in QT_CURVES:
        data: dict[str, dict[str, list[float]]] = {}
        for run, (key, _, curves) in runs.items():
            data.setdefault(key, {})[run] = curves[name]
        (directory / f"{name}.json").write_text(json.dumps(data))  # NaN written as NaN, as json.dump does
    (directory / "args.json").write_text(json.dumps({run: args for run, (_, args, _) in runs.items()}))
    if meta:
        path = base / "dataset-meta-features" / "meta-album" / "meta-features.json"
        path.parent.mkdir(parents=True)
        path.write_text(
            json.dumps(
                {
                    "dataset_names": ["micro/set1/PNU", "micro/set0/BRD", "mini/set1/PNU"],
                    "dataset_descriptors": [[800, 20, 128, 3], [640, 16, 128, 3], [9000, 19, 128, 3]],
                    "hessians": [[0.1] * 4, [0.2] * 4, [0.3] * 4],
                }
            )
        )


def write_summary_csv(path: Path, curves: dict[str, list[float]], index: bool = True) -> None:
    """A summary.csv as pandas to_csv writes it: an unnamed index column first, NaN as an empty cell."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(curves["eval_top1"])
    header = ([""] if index else []) + list(QT_CURVES)
    lines = [",".join(header)]
    for i in range(n):
        cells = [str(i)] if index else []
        cells += ["" if math.isnan(curves[c][i]) else repr(curves[c][i]) for c in QT_CURVES]
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")


def write_raw(src: Path, version: str, run: str, args: dict[str, Any] | None, curves: dict | None) -> None:
    """One run of the raw layout: args/<version>/<run>.yaml and curves/<version>/<run>.csv."""
    if args is not None:
        path = src / "args" / version / f"{run}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(args))
    if curves is not None:
        write_summary_csv(src / "curves" / version / f"{run}.csv", curves)


def read_store(store: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """All runs (sorted by id) and curves of a store, after checking the store validates."""
    reader = StoreReader(store)
    runs = reader.scan_runs().collect().sort("run_id")
    curves = reader.scan_curves().collect().sort("run_id", "epoch")
    assert validate(runs, curves, str(store)) == []
    return runs, curves


def run_row(runs: pl.DataFrame, run_id: str) -> dict[str, Any]:
    rows = runs.filter(pl.col("run_id") == run_id).rows(named=True)
    assert len(rows) == 1, f"run {run_id} not found in {runs['run_id'].to_list()}"
    return rows[0]


def column(curves: pl.DataFrame, run_id: str, name: str) -> list[Any]:
    return curves.filter(pl.col("run_id") == run_id)[name].to_list()


# --------------------------------------------------------------------------------------------
# Quick-Tune, aggregated layout
# --------------------------------------------------------------------------------------------


@pytest.fixture
def qt_store(tmp_path: Path) -> tuple[Path, ImportReport]:
    src = tmp_path / "qt"
    write_aggregated(src)
    report = import_quicktune(src, tmp_path / "store")
    return tmp_path / "store", report


def test_aggregated_counts_names_and_report(qt_store: tuple[Path, ImportReport]) -> None:
    store, report = qt_store
    assert report.runs_imported == 4
    assert report.runs_skipped == []
    assert report.versions == ["micro"]
    assert sorted(report.datasets) == [("micro", "BRD"), ("micro", "PNU")]
    runs, _ = read_store(store)
    assert runs["run_id"].to_list() == ["micro-run_nan", "micro-run_ok", "micro-run_plateau", "micro-run_short"]
    assert set(runs["source"]) == {"import-quicktune"}
    assert set(runs["pretrained_source"]) == {"hub:timm/dla46x_c.in1k"}
    assert set(runs["model"]) == {"dla46x_c.in1k"}  # the paper's old timm name, mapped through the space's aliases
    assert StoreReader(store).metadata.name == "qt"
    assert any("divided by 100" in d for d in StoreReader(store).metadata.deviations)
    assert "4 run(s) written" in str(report)


def test_aggregated_statuses_and_epochs(qt_store: tuple[Path, ImportReport]) -> None:
    runs, curves = read_store(qt_store[0])
    expected = {
        "micro-run_ok": ("ok", 3, 3),
        "micro-run_short": ("timeout", 2, 50),
        "micro-run_nan": ("diverged", 2, 3),
        "micro-run_plateau": ("ok", 3, 3),
    }
    for run_id, (status, n, budget) in expected.items():
        row = run_row(runs, run_id)
        assert (row["status"], row["n_epochs"], row["max_epochs"]) == (status, n, budget), run_id
        assert column(curves, run_id, "epoch") == list(range(1, n + 1))
    assert math.isnan(column(curves, "micro-run_nan", "train_loss")[-1])


def test_aggregated_accuracies_are_fractions(qt_store: tuple[Path, ImportReport]) -> None:
    store, _ = qt_store
    arrays = StoreReader(store).curve_arrays("PNU", "micro")
    assert list(arrays.run_ids) == ["micro-run_ok", "micro-run_short"]
    assert arrays.values.shape == (2, 50)
    np.testing.assert_allclose(arrays.values[0, :3], [0.10, 0.50, 0.755], rtol=1e-6)
    np.testing.assert_allclose(arrays.values[1, :2], [0.20, 0.30], rtol=1e-6)
    assert np.isnan(arrays.values[0, 3:]).all() and np.isnan(arrays.values[1, 2:]).all()
    np.testing.assert_allclose(arrays.cost[0, :3], [12.0, 13.0, 14.0], rtol=1e-6)
    _, curves = read_store(store)
    np.testing.assert_allclose(column(curves, "micro-run_ok", "eval_top5"), [0.30, 0.70, 0.955], rtol=1e-6)
    np.testing.assert_allclose(column(curves, "micro-run_ok", "head_grad_norm"), [1.0, 2.0, 3.0])
    np.testing.assert_allclose(column(curves, "micro-run_ok", "backbone_grad_norm"), [0.5, 1.5, 2.5])


def test_aggregated_hyperparameters(qt_store: tuple[Path, ImportReport]) -> None:
    runs, curves = read_store(qt_store[0])
    ok = run_row(runs, "micro-run_ok")
    assert ok["opt_betas"] == "0.9 0.999"
    assert ok["clip_grad"] is None and ok["layer_decay"] is None
    assert ok["data_augmentation"] == "trivial_augment"
    assert (ok["decay_epochs"], ok["decay_rate"]) == (20, 0.5)
    # inactive conditionals hold parser defaults in the source and are NULL in the store
    for name in ("momentum", "patience_epochs", "ra_num_ops", "ra_magnitude", "auto_augment"):
        assert ok[name] is None, name
    assert (ok["seed"], ok["final_batch_size"], ok["stoch_norm"], ok["batch_size"]) == (3, 16, True, 32)
    assert ok["extra_hps"] == "{}"
    assert column(curves, "micro-run_ok", "peak_memory") == [None, None, 123456789]

    short = run_row(runs, "micro-run_short")
    assert (short["opt"], short["momentum"], short["opt_betas"]) == ("momentum", 0.95, None)
    assert (short["data_augmentation"], short["ra_num_ops"], short["ra_magnitude"]) == ("random_augment", 3, 17)
    assert short["sched"] is None and short["decay_epochs"] is None
    assert short["status_message"] and "inferred" in short["status_message"]

    nan = run_row(runs, "micro-run_nan")
    assert (nan["data_augmentation"], nan["auto_augment"], nan["clip_grad"]) == ("auto_augment", "v0", 10.0)

    plateau = run_row(runs, "micro-run_plateau")
    assert (plateau["patience_epochs"], plateau["decay_rate"], plateau["opt_betas"]) == (5, None, None)
    assert plateau["layer_decay"] == 0.65
    assert ok["pipeline_id"] != short["pipeline_id"]


def test_aggregated_meta_features(qt_store: tuple[Path, ImportReport]) -> None:
    runs, _ = read_store(qt_store[0])
    cols = ("train_size", "num_classes", "resolution", "channels")
    assert [run_row(runs, "micro-run_ok")[c] for c in cols] == [800, 20, 128, 3]
    assert [run_row(runs, "micro-run_nan")[c] for c in cols] == [640, 16, 128, 3]


def test_aggregated_without_meta_features_uses_args_num_classes(tmp_path: Path) -> None:
    write_aggregated(tmp_path / "qt", meta=False)
    report = import_quicktune(tmp_path / "qt", tmp_path / "store")
    runs, _ = read_store(tmp_path / "store")
    assert runs["train_size"].null_count() == runs.height
    assert set(runs["num_classes"]) == {20}
    assert any("no meta-features" in n for n in report.notes)


def test_qt_metadataset_level_is_accepted(tmp_path: Path) -> None:
    write_aggregated(tmp_path / "data" / "qt_metadataset")
    report = import_quicktune(tmp_path / "data", tmp_path / "store", name="quicktune-micro")
    runs, _ = read_store(tmp_path / "store")
    assert report.runs_imported == 4 and runs.height == 4
    assert run_row(runs, "micro-run_ok")["train_size"] == 800
    assert StoreReader(tmp_path / "store").metadata.name == "quicktune-micro"


def test_import_twice_is_a_no_op(tmp_path: Path) -> None:
    write_aggregated(tmp_path / "qt")
    import_quicktune(tmp_path / "qt", tmp_path / "store")
    parts = compacted_parts(tmp_path / "store")
    before = read_store(tmp_path / "store")
    again = import_quicktune(tmp_path / "qt", tmp_path / "store")
    assert (again.runs_imported, again.runs_unchanged) == (0, 4)
    assert compacted_parts(tmp_path / "store") == parts
    after = read_store(tmp_path / "store")
    assert after[0].drop("created_at").equals(before[0].drop("created_at"))
    assert after[1].equals(before[1])


def test_non_numeric_curve_value_skips_the_run(tmp_path: Path) -> None:
    runs = dict(QT_RUNS)
    key, args, curves = runs["run_ok"]
    not_numbers: list[Any] = [10.0, "oops", 30.0]
    runs["run_bad"] = (key, args, {**curves, "eval_top1": not_numbers})
    write_aggregated(tmp_path / "qt", runs=runs)
    report = import_quicktune(tmp_path / "qt", tmp_path / "store")
    assert report.runs_imported == 4
    assert [sid for sid, _ in report.runs_skipped] == ["micro/run_bad"]
    assert "eval_top1" in report.runs_skipped[0][1]


def test_accuracy_above_100_percent_is_skipped_with_the_schema_problem(tmp_path: Path) -> None:
    runs = dict(QT_RUNS)
    key, args, _ = runs["run_ok"]
    runs["run_wild"] = (key, args, qt_curves([10.0, 150.0, 30.0]))
    write_aggregated(tmp_path / "qt", runs=runs)
    report = import_quicktune(tmp_path / "qt", tmp_path / "store")
    assert report.runs_skipped == [
        ("micro/run_wild", "breaks the store schema: eval_top1 outside [0, 1] (first at epoch 2)")
    ]
    read_store(tmp_path / "store")


# --------------------------------------------------------------------------------------------
# Quick-Tune, broken sources
# --------------------------------------------------------------------------------------------


def test_missing_args_json_names_the_file(tmp_path: Path) -> None:
    write_aggregated(tmp_path / "qt")
    (tmp_path / "qt" / "micro" / "args.json").unlink()
    with pytest.raises(ImportSourceError, match=r"micro/args\.json is missing"):
        import_quicktune(tmp_path / "qt", tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_curve_json_that_is_not_json_names_the_file(tmp_path: Path) -> None:
    write_aggregated(tmp_path / "qt")
    (tmp_path / "qt" / "micro" / "eval_time.json").write_text("{not json")
    with pytest.raises(ImportSourceError, match=r"eval_time\.json is not readable JSON"):
        import_quicktune(tmp_path / "qt", tmp_path / "store")


def test_curve_json_of_the_wrong_shape_names_the_file(tmp_path: Path) -> None:
    write_aggregated(tmp_path / "qt")
    (tmp_path / "qt" / "micro" / "eval_top1.json").write_text(json.dumps([1, 2, 3]))
    with pytest.raises(ImportSourceError, match=r"eval_top1\.json is not a JSON object"):
        import_quicktune(tmp_path / "qt", tmp_path / "store")


def test_missing_required_curve_names_the_file(tmp_path: Path) -> None:
    write_aggregated(tmp_path / "qt")
    (tmp_path / "qt" / "micro" / "train_time.json").unlink()
    (tmp_path / "qt" / "micro" / "lr.json").unlink()  # optional: no error of its own
    with pytest.raises(ImportSourceError, match=r"train_time\.json is missing"):
        import_quicktune(tmp_path / "qt", tmp_path / "store")


def test_optional_curves_may_be_absent(tmp_path: Path) -> None:
    write_aggregated(tmp_path / "qt")
    for name in ("lr", "train_loss", "eval_top5", "epoch"):
        (tmp_path / "qt" / "micro" / f"{name}.json").unlink()
    import_quicktune(tmp_path / "qt", tmp_path / "store")
    runs, curves = read_store(tmp_path / "store")
    assert curves["lr"].null_count() == curves.height
    # without train_loss the NaN of run_nan is not seen; invalid_loss_value still marks it diverged
    assert run_row(runs, "micro-run_nan")["status"] == "diverged"
    assert run_row(runs, "micro-run_nan")["n_epochs"] == 3


def test_mismatched_run_ids_name_the_files(tmp_path: Path) -> None:
    write_aggregated(tmp_path / "qt")
    path = tmp_path / "qt" / "micro" / "args.json"
    args = json.loads(path.read_text())
    args["run_other"] = args.pop("run_ok")
    path.write_text(json.dumps(args))
    with pytest.raises(ImportSourceError, match=r"args\.json and .*eval_top1\.json hold different run ids"):
        import_quicktune(tmp_path / "qt", tmp_path / "store")


def test_mismatched_curve_files_name_the_files(tmp_path: Path) -> None:
    write_aggregated(tmp_path / "qt")
    path = tmp_path / "qt" / "micro" / "eval_time.json"
    data = json.loads(path.read_text())
    del data[PNU]["run_ok"]
    path.write_text(json.dumps(data))
    with pytest.raises(ImportSourceError, match=r"eval_time\.json and .*eval_top1\.json hold different runs"):
        import_quicktune(tmp_path / "qt", tmp_path / "store")


def test_broken_meta_features_name_the_file(tmp_path: Path) -> None:
    write_aggregated(tmp_path / "qt")
    path = tmp_path / "qt" / "dataset-meta-features" / "meta-album" / "meta-features.json"
    path.write_text(json.dumps([[800, 20, 128, 3]]))
    with pytest.raises(ImportSourceError, match=r"meta-features\.json needs parallel lists"):
        import_quicktune(tmp_path / "qt", tmp_path / "store")


def test_unknown_layout(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.txt").write_text("hello")
    with pytest.raises(ImportSourceError, match="is not a Quick-Tune meta-dataset"):
        import_quicktune(tmp_path / "junk", tmp_path / "store")
    with pytest.raises(ImportSourceError, match="is not a directory"):
        import_quicktune(tmp_path / "nowhere", tmp_path / "store")
    assert issubclass(ImportSourceError, StoreError)


def test_raw_layout_needs_both_directories(tmp_path: Path) -> None:
    (tmp_path / "raw" / "curves" / "micro").mkdir(parents=True)
    with pytest.raises(ImportSourceError, match=r"raw/args is missing"):
        import_quicktune(tmp_path / "raw", tmp_path / "store")


def test_dataset_keys_ending_alike_are_an_error(tmp_path: Path) -> None:
    _, args, curves = QT_RUNS["run_ok"]
    runs = {"a": (PNU, args, curves), "b": ("mtlbm/micro/set2/PNU", args, curves)}
    write_aggregated(tmp_path / "qt", runs=runs)
    with pytest.raises(ImportSourceError, match="both end in 'PNU'"):
        import_quicktune(tmp_path / "qt", tmp_path / "store")


# --------------------------------------------------------------------------------------------
# Quick-Tune, raw layout
# --------------------------------------------------------------------------------------------


def amp_collapse_curve() -> dict[str, list[float]]:
    top1 = [50.0 + i for i in range(25)] + [3.0]  # 26 rows, a drop of 71 points in the last one
    return qt_curves(top1)


@pytest.fixture
def raw_src(tmp_path: Path) -> Path:
    src = tmp_path / "raw"
    write_raw(src, "micro", "ok", qt_args(PNU, epochs=3), qt_curves([10.0, 20.0, 30.0]))
    write_raw(src, "micro", "amp_collapse", qt_args(PNU, amp=True), amp_collapse_curve())
    write_raw(src, "micro", "no_amp_drop", qt_args(PNU, amp=False), amp_collapse_curve())
    write_raw(src, "micro", "one_zero", qt_args(BRD), qt_curves([0.0]))
    write_raw(src, "micro", "one_good", qt_args(BRD), qt_curves([12.5]))
    write_raw(src, "micro", "diverged", qt_args(BRD, epochs=3), qt_curves([40.0, NAN, NAN], [2.0, NAN, NAN]))
    write_raw(src, "micro", "long", qt_args(BRD), qt_curves([float(i) for i in range(60)]))
    write_raw(src, "micro", "no_args", None, qt_curves([10.0, 20.0]))
    write_raw(src, "micro", "no_curve", qt_args(BRD), None)
    # a csv without eval_top5
    write_raw(src, "micro", "no_top5", qt_args(BRD), None)
    write_summary_csv(src / "curves" / "micro" / "no_top5.csv", qt_curves([10.0, 20.0]))
    path = src / "curves" / "micro" / "no_top5.csv"
    path.write_text(path.read_text().replace("eval_top5", "eval_top9"))
    meta = src / "dataset-meta-features" / "meta-album" / "meta-features.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"dataset_names": ["micro/set1/PNU"], "dataset_descriptors": [[800, 20, 128, 3]]}))
    return src


def test_raw_filters_and_skip_reasons(raw_src: Path, tmp_path: Path) -> None:
    report = import_quicktune(raw_src, tmp_path / "store")
    skipped = dict(report.runs_skipped)
    assert set(skipped) == {"micro/one_zero", "micro/no_args", "micro/no_curve", "micro/no_top5"}
    assert "first eval_top1 is 0 or NaN" in skipped["micro/one_zero"]
    assert "no args file" in skipped["micro/no_args"]
    assert "no curve file" in skipped["micro/no_curve"]
    assert "eval_top5" in skipped["micro/no_top5"]
    assert report.runs_imported == 6
    assert any("amp_collapse: dropped epoch 26" in n for n in report.notes)

    runs, curves = read_store(tmp_path / "store")
    n_epochs = dict(zip(runs["run_id"], runs["n_epochs"], strict=True))
    assert n_epochs == {
        "micro-ok": 3,
        "micro-amp_collapse": 25,  # row 26 dropped: AMP collapse
        "micro-no_amp_drop": 26,  # same curve without amp: kept
        "micro-one_good": 1,
        "micro-diverged": 2,
        "micro-long": 52,  # at most 52 rows are read
    }
    assert run_row(runs, "micro-ok")["status"] == "ok"
    assert run_row(runs, "micro-one_good")["status"] == "timeout"
    assert run_row(runs, "micro-diverged")["status"] == "diverged"
    top1 = column(curves, "micro-diverged", "eval_top1")
    assert top1[0] == pytest.approx(0.40) and math.isnan(top1[1])
    np.testing.assert_allclose(column(curves, "micro-ok", "eval_top1"), [0.1, 0.2, 0.3], rtol=1e-6)
    assert run_row(runs, "micro-ok")["train_size"] == 800
    assert run_row(runs, "micro-one_good")["train_size"] is None  # BRD is not in the meta-features file


def test_raw_csv_without_index_column_is_read(tmp_path: Path) -> None:
    src = tmp_path / "raw"
    write_raw(src, "mini", "plain", qt_args(PNU, epochs=2), None)
    write_summary_csv(src / "curves" / "mini" / "plain.csv", qt_curves([10.0, 20.0]), index=False)
    report = import_quicktune(src, tmp_path / "store")
    assert report.runs_imported == 1 and report.runs_skipped == []
    runs, _ = read_store(tmp_path / "store")
    assert run_row(runs, "mini-plain")["status"] == "ok"


def test_raw_broken_yaml_is_skipped_with_reason(tmp_path: Path) -> None:
    src = tmp_path / "raw"
    write_raw(src, "micro", "good", qt_args(PNU, epochs=2), qt_curves([10.0, 20.0]))
    write_raw(src, "micro", "broken", None, qt_curves([10.0, 20.0]))
    (src / "args" / "micro" / "broken.yaml").write_text("model: [unclosed\n")
    report = import_quicktune(src, tmp_path / "store")
    assert report.runs_imported == 1
    assert report.runs_skipped[0][0] == "micro/broken" and "not readable YAML" in report.runs_skipped[0][1]
    assert "skipped micro/broken" in str(report)


# --------------------------------------------------------------------------------------------
# QTT
# --------------------------------------------------------------------------------------------


def qtt_config(**overrides: str) -> dict[str, str]:
    """One config.csv row as QTT writes it: hyphenated names, text cells ('' = NaN), no linear_probing column."""
    row = {
        "model": "dla46x_c",
        "batch-size": "16",
        "opt": "sgd",
        "opt-betas": "(0.9, 0.999)",
        "lr": "0.0001",
        "sched": "cosine",
        "decay-epochs": "0.0",
        "decay-rate": "0.1",
        "patience-epochs": "10",
        "momentum": "0.9",
        "clip-grad": "",
        "layer-decay": "",
        "data-augmentation": "none",
        "auto-augment": "",
        "ra-num-ops": "2",
        "ra-magnitude": "8",
        "pct-to-freeze": "1.0",
        "stoch-norm": "False",
        "sp-reg": "0.0",
        "delta-reg": "0.0",
        "bss-reg": "0.0",
        "cotuning-reg": "0.0",
        "mixup": "0.0",
        "mixup-prob": "1.0",
        "cutmix": "0.0",
        "drop": "0.0",
        "smoothing": "0.1",
        "warmup-lr": "0.0",
        "warmup-epochs": "5",
        "weight-decay": "0.0001",
        "amp": "False",
        "custom-flag": "",
    }
    row.update({k.replace("_", "-"): v for k, v in overrides.items()})
    return row


QTT_CONFIGS = {
    # a large integer id, as in the official files; adamw with betas as a tuple string; layer_decay 0.0 = off
    "74417154365539438": qtt_config(
        model="edgenext_x_small", batch_size="32", opt="adamw", opt_betas="(0.9, 0.99)", lr="0.001",
        layer_decay="0.0", pct_to_freeze="0.2", amp="True", custom_flag="7",
    ),
    "2": qtt_config(
        batch_size="64", opt="momentum", momentum="0.8", lr="0.01", sched="step", decay_epochs="20.0",
        decay_rate="0.5", clip_grad="1.0", layer_decay="0.75", data_augmentation="trivial-augment",  # QTT's spelling
        stoch_norm="True",
    ),
    "3": qtt_config(sched="plateau", patience_epochs="5", clip_grad="10", data_augmentation="auto-augment",
                    auto_augment="v0", custom_flag="x"),
    "4": qtt_config(data_augmentation="random_augment", ra_num_ops="3", ra_magnitude="17"),
}  # fmt: skip

QTT_WIDTH = 4
QTT_CURVES: dict[str, list[float | None]] = {  # in percent (the importer detects it: max > 1)
    "74417154365539438": [10.0, 20.0, 30.0, 40.0],  # full budget: ok
    "2": [50.0, 60.0, None, None],  # stopped after 2: timeout
    "3": [15.0, None, 25.0, None],  # a NaN inside the run: diverged, kept up to epoch 2
    "4": [None, None, None, None],  # nothing measured: skipped
}
QTT_COST = {"74417154365539438": 40.0, "2": 10.0, "3": 9.0, "4": 1.0}
QTT_META = {  # two tasks: the first two runs share a meta row
    "74417154365539438": ["800", "20", "128", "3"],
    "2": ["800", "20", "128", "3"],
    "3": ["1600.0", "40.0", "128.0", "3.0"],
    "4": ["1600.0", "40.0", "128.0", "3.0"],
}


def write_csv(path: Path, header: list[str], rows: dict[str, list[Any]]) -> None:
    """A csv as pandas writes it with an index: unnamed first header cell, index values first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)  # quotes cells with commas, such as "(0.9, 0.99)", as pandas does
        writer.writerow(["", *header])
        writer.writerows([i] + ["" if v is None else str(v) for v in row] for i, row in rows.items())


def write_qtt(directory: Path, meta_header: list[str] | None = None, percent: bool = True) -> None:
    scale = 1.0 if percent else 0.01
    header = list(QTT_CONFIGS["2"])
    write_csv(directory / "config.csv", header, {i: list(c.values()) for i, c in QTT_CONFIGS.items()})
    write_csv(
        directory / "curve.csv",
        [str(i) for i in range(1, QTT_WIDTH + 1)],
        {i: [None if v is None else v * scale for v in c] for i, c in QTT_CURVES.items()},
    )
    write_csv(directory / "cost.csv", ["cost"], {i: [c] for i, c in QTT_COST.items()})
    header = meta_header or ["num-samples", "num-classes", "num-features", "num-channels"]
    write_csv(directory / "meta.csv", header, QTT_META)


@pytest.fixture
def qtt_store(tmp_path: Path) -> tuple[Path, ImportReport]:
    write_qtt(tmp_path / "mtlbm" / "micro")
    report = import_qtt(tmp_path / "mtlbm", tmp_path / "store")
    return tmp_path / "store", report


def test_qtt_counts_statuses_and_tasks(qtt_store: tuple[Path, ImportReport]) -> None:
    store, report = qtt_store
    assert report.runs_imported == 3
    assert report.runs_skipped == [("micro/4", "curve.csv has no accuracy for this run")]
    assert sorted(report.datasets) == [("micro", "micro-task0"), ("micro", "micro-task1")]
    assert any("percentages" in n for n in report.notes)
    assert any("'linear_probing'" in n and "False" in n for n in report.notes)
    runs, _ = read_store(store)
    expected = {
        "micro-74417154365539438": ("micro-task0", "ok", 4),
        "micro-2": ("micro-task0", "timeout", 2),
        "micro-3": ("micro-task1", "diverged", 2),
    }
    for run_id, (dataset, status, n) in expected.items():
        row = run_row(runs, run_id)
        assert (row["dataset"], row["status"], row["n_epochs"], row["max_epochs"]) == (dataset, status, n, 4)
    assert set(runs["source"]) == {"import-qtt"}
    assert runs["pretrained_source"].null_count() == 3


def test_qtt_unknown_categorical_values_are_flagged(tmp_path: Path) -> None:
    write_qtt(tmp_path / "mtlbm" / "micro")
    config = tmp_path / "mtlbm" / "micro" / "config.csv"
    config.write_text(config.read_text().replace("auto-augment", "fancy-augment"))
    report = import_qtt(tmp_path / "mtlbm", tmp_path / "store")
    skipped = dict(report.runs_skipped)
    assert "hyperparameter 'data_augmentation' is not one of trivial_augment, random_augment" in skipped["micro/3"]
    assert report.runs_imported == 2


def test_old_timm_names_map_to_current_ones() -> None:
    assert current_model_name("beit_large_patch16_512") == "beit_large_patch16_512.in22k_ft_in22k_in1k"
    assert current_model_name("dla46x_c.in1k") == "dla46x_c.in1k" and current_model_name("my_net") == "my_net"


def test_categorical_values_take_the_schema_spelling() -> None:
    assert categorical_value("data_augmentation", "random-augment") == "random_augment"
    assert categorical_value("data_augmentation", "Trivial-Augment") == "trivial_augment"
    assert categorical_value("data_augmentation", "fancy-augment") == "fancy-augment"  # kept: validate flags it
    assert categorical_value("opt", "adamw") == "adamw" and categorical_value("model", "a-b") == "a-b"


def test_qtt_curves_and_costs(qtt_store: tuple[Path, ImportReport]) -> None:
    store, _ = qtt_store
    arrays = StoreReader(store).curve_arrays("micro-task0", "micro")
    assert list(arrays.run_ids) == ["micro-2", "micro-74417154365539438"]
    np.testing.assert_allclose(arrays.values[1], [0.1, 0.2, 0.3, 0.4], rtol=1e-6)
    np.testing.assert_allclose(arrays.values[0, :2], [0.5, 0.6], rtol=1e-6)
    assert np.isnan(arrays.values[0, 2:]).all()
    np.testing.assert_allclose(arrays.cost[1], [10.0] * 4)  # 40 s over 4 epochs
    np.testing.assert_allclose(arrays.cost[0, :2], [5.0, 5.0])
    _, curves = read_store(store)
    top1 = column(curves, "micro-3", "eval_top1")
    assert top1[0] == pytest.approx(0.15) and math.isnan(top1[1])
    assert set(column(curves, "micro-3", "eval_time")) == {0.0}


def test_qtt_hyperparameters(qtt_store: tuple[Path, ImportReport]) -> None:
    runs, _ = read_store(qtt_store[0])
    a = run_row(runs, "micro-74417154365539438")
    assert (a["model"], a["batch_size"], a["opt"], a["opt_betas"]) == ("edgenext_x_small.in1k", 32, "adamw", "0.9 0.99")
    assert a["data_augmentation"] is None and a["auto_augment"] is None
    assert a["clip_grad"] is None and a["layer_decay"] is None  # NaN and QTT's 0 = off
    for name in ("decay_epochs", "decay_rate", "patience_epochs", "momentum", "ra_num_ops"):
        assert a[name] is None, name
    assert (a["amp"], a["stoch_norm"], a["linear_probing"], a["seed"]) == (True, False, False, 0)
    assert json.loads(a["extra_hps"]) == {"custom_flag": 7}
    # num-samples counts train + validation images: not the train_size (see test_qtt_sample_counts_...)
    assert [a[c] for c in ("train_size", "num_classes", "resolution", "channels")] == [None, 20, 128, 3]

    b = run_row(runs, "micro-2")
    assert (b["momentum"], b["opt_betas"], b["decay_epochs"], b["decay_rate"]) == (0.8, None, 20, 0.5)
    assert (b["clip_grad"], b["layer_decay"], b["data_augmentation"]) == (1.0, 0.75, "trivial_augment")
    assert json.loads(b["extra_hps"]) == {"custom_flag": None}

    c = run_row(runs, "micro-3")
    assert (c["patience_epochs"], c["data_augmentation"], c["auto_augment"], c["clip_grad"]) == (
        5,
        "auto_augment",
        "v0",
        10.0,
    )
    assert [c[k] for k in ("train_size", "num_classes")] == [None, 40]


def test_qtt_sample_counts_are_kept_as_such_and_train_size_needs_the_split(tmp_path: Path) -> None:
    write_qtt(tmp_path / "mtlbm" / "micro")
    import_qtt(tmp_path / "mtlbm", tmp_path / "store")
    generator = read_metadata(tmp_path / "store").generator
    assert generator["num_samples"] == {"micro": {"micro-task0": 800, "micro-task1": 1600}}
    assert generator["dataset_keys"] == {"micro": ["micro-task0", "micro-task1"]}
    assert any("num_samples counts training + validation" in d for d in read_metadata(tmp_path / "store").deviations)
    import_qtt(tmp_path / "mtlbm", tmp_path / "split", train_fraction=0.75)  # Meta-Album's 60/20/20
    runs, _ = read_store(tmp_path / "split")
    assert run_row(runs, "micro-2")["train_size"] == 600 and run_row(runs, "micro-3")["train_size"] == 1200
    with pytest.raises(ImportSourceError, match=r"train_fraction must lie in \(0, 1\]"):
        import_qtt(tmp_path / "mtlbm", tmp_path / "bad", train_fraction=80)


def test_qtt_fraction_curves_are_not_scaled_and_files_in_src(tmp_path: Path) -> None:
    write_qtt(tmp_path / "extended", meta_header=["num_samples", "num_classes", "num_features", "num_channels"])
    path = tmp_path / "extended" / "curve.csv"
    write_csv(
        path,
        ["1", "2", "3", "4"],
        {i: [None if v is None else v / 100 for v in c] for i, c in QTT_CURVES.items()},
    )
    report = import_qtt(tmp_path / "extended", tmp_path / "store")
    assert report.versions == ["extended"] and report.runs_imported == 3
    assert not any("percentages" in n for n in report.notes)
    _, curves = read_store(tmp_path / "store")
    np.testing.assert_allclose(column(curves, "extended-74417154365539438", "eval_top1"), [0.1, 0.2, 0.3, 0.4])


def test_qtt_dataset_column_names_the_dataset(tmp_path: Path) -> None:
    write_qtt(tmp_path / "q" / "mini")
    meta = {
        i: [ds, *row] for (i, row), ds in zip(QTT_META.items(), ["mtlbm/mini/set0/BRD", "a/b/PNU"] * 2, strict=True)
    }
    write_csv(
        tmp_path / "q" / "mini" / "meta.csv", ["dataset", "num_samples", "num_classes", "num_features", "x"], meta
    )
    report = import_qtt(tmp_path / "q", tmp_path / "store")
    assert sorted(report.datasets) == [("mini", "BRD"), ("mini", "PNU")]


def test_qtt_import_twice_is_a_no_op(tmp_path: Path) -> None:
    write_qtt(tmp_path / "q" / "micro")
    import_qtt(tmp_path / "q", tmp_path / "store")
    again = import_qtt(tmp_path / "q", tmp_path / "store")
    assert (again.runs_imported, again.runs_unchanged) == (0, 3)
    assert len(compacted_parts(tmp_path / "store")) == 2


def test_qtt_mismatched_ids_name_the_file(tmp_path: Path) -> None:
    write_qtt(tmp_path / "q" / "micro")
    write_csv(tmp_path / "q" / "micro" / "cost.csv", ["cost"], {"1": [1.0], "2": [2.0], "3": [3.0], "4": [4.0]})
    with pytest.raises(ImportSourceError, match=r"micro/cost\.csv and .*config\.csv hold different run ids"):
        import_qtt(tmp_path / "q", tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_qtt_missing_file_and_unknown_layout(tmp_path: Path) -> None:
    write_qtt(tmp_path / "q" / "micro")
    (tmp_path / "q" / "micro" / "meta.csv").unlink()
    with pytest.raises(ImportSourceError, match=r"micro/meta\.csv is missing"):
        import_qtt(tmp_path / "q", tmp_path / "store")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportSourceError, match="is not a QTT meta-dataset"):
        import_qtt(tmp_path / "empty", tmp_path / "store")


def test_qtt_non_numeric_curve_names_the_file(tmp_path: Path) -> None:
    write_qtt(tmp_path / "q" / "micro")
    path = tmp_path / "q" / "micro" / "curve.csv"
    path.write_text(path.read_text().replace("20.0", "twenty"))
    with pytest.raises(ImportSourceError, match=r"curve\.csv holds a value that is not a number"):
        import_qtt(tmp_path / "q", tmp_path / "store")


def test_dataset_keys_keep_the_source_order_and_a_second_import_appends_its_own(tmp_path: Path) -> None:
    write_aggregated(tmp_path / "a", runs={r: QT_RUNS[r] for r in ("run_nan", "run_ok")})  # BRD first in the JSON
    write_aggregated(tmp_path / "b", runs={"run_x": ("mtlbm/micro/set2/AWA", *QT_RUNS["run_ok"][1:])}, meta=False)
    import_quicktune(tmp_path / "a", tmp_path / "store")
    import_quicktune(tmp_path / "b", tmp_path / "store")
    import_quicktune(tmp_path / "a", tmp_path / "store")  # again: nothing changes
    generator = read_metadata(tmp_path / "store").generator
    assert generator["dataset_keys"] == {"micro": [BRD, PNU, "mtlbm/micro/set2/AWA"]}
    assert generator["importers"] == ["import-quicktune"]
