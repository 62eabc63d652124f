"""The schema's rules: validate() finds every problem, pipeline ids are stable, conditions agree."""

from __future__ import annotations

import polars as pl

from metagen.search_space import SearchSpace
from metagen.store.records import run_file_table, split_run_tables
from metagen.store.schema import (
    ACCURACY_UNIT,
    CATEGORICAL_VALUES,
    CONDITIONS,
    HYPERPARAMETERS,
    SCHEMA_VERSION,
    drop_inactive,
    pipeline_id,
    validate,
)
from tests.factories import make_curve, make_run


def frames(run: dict, curve: list[dict]) -> tuple[pl.DataFrame, pl.DataFrame]:
    return split_run_tables(run_file_table(run, curve))


def messages(run: dict, curve: list[dict]) -> list[str]:
    return [p.message for p in validate(*frames(run, curve))]


def test_valid_run_has_no_problems() -> None:
    assert SCHEMA_VERSION == 2 and "fraction" in ACCURACY_UNIT
    assert validate(*frames(make_run(), make_curve())) == []


def test_validate_reports_every_problem_at_once() -> None:
    curve = make_curve(4)
    curve[1]["epoch"], curve[2]["epoch"] = 3, 2  # non-monotone
    curve[0]["eval_top1"] = 55.0  # a percentage
    curve[3]["train_time"] = -1.0
    msgs = messages(make_run(status="error", max_epochs=4), curve)
    assert any("not 1, 2, 3" in m for m in msgs)
    assert any("eval_top1 outside [0, 1]" in m for m in msgs)
    assert any("train_time is negative" in m for m in msgs)
    assert any("without a status_message" in m for m in msgs)


def test_nan_accuracy_only_in_diverged_runs() -> None:
    curve = make_curve(3)
    curve[2]["eval_top1"] = float("nan")
    assert any("NaN" in m for m in messages(make_run(), curve))
    assert messages(make_run(status="diverged", status_message="NaN loss"), curve) == []


def test_unknown_status_bad_run_id_and_count_mismatch() -> None:
    msgs = messages(make_run(run_id="../evil", status="finished", n_epochs=9), make_curve(3))
    assert any("not file-name safe" in m for m in msgs)
    assert any("status is not one of" in m for m in msgs)
    assert any("n_epochs is 9" in m for m in msgs)


def test_duplicates_and_orphans_in_one_table() -> None:
    runs, curves = frames(make_run(), make_curve(2))
    runs2 = pl.concat([runs, runs])
    orphan = curves.with_columns(pl.lit("ghost").alias("run_id"))
    msgs = [p.message for p in validate(runs2, pl.concat([curves, orphan]))]
    assert any("duplicate run id" in m for m in msgs)
    assert any("without a run row" in m for m in msgs)


def test_pipeline_id_is_stable_and_ignores_absent_values() -> None:
    hps = {"lr": 0.001, "opt": "adam", "momentum": None, "batch_size": 32}
    same = {"batch_size": 32.0, "opt": "adam", "lr": 1e-3}
    assert pipeline_id("m", hps) == pipeline_id("m", same)
    assert pipeline_id("m", hps) != pipeline_id("m", {**hps, "lr": 0.01})
    assert pipeline_id("m", hps) != pipeline_id("other", hps)
    assert len(pipeline_id("m", hps)) == 16


def test_drop_inactive_nulls_children_of_other_parents() -> None:
    hps = {"opt": "sgd", "momentum": 0.9, "opt_betas": "0.9 0.999", "sched": "plateau", "patience_epochs": 5,
           "decay_rate": 0.1, "data_augmentation": None, "ra_num_ops": 2}  # fmt: skip
    out = drop_inactive(hps)
    assert out["momentum"] is None and out["opt_betas"] is None and out["decay_rate"] is None
    assert out["patience_epochs"] == 5 and out["ra_num_ops"] is None


def test_search_space_config_agrees_with_schema() -> None:
    space = SearchSpace.load("v1")
    assert len(space.models) == 24
    assert tuple(hp.name for hp in space.hyperparameters) == HYPERPARAMETERS
    conditions = {hp.name: (hp.parent, hp.parent_values) for hp in space.hyperparameters if hp.parent}
    assert conditions == CONDITIONS
    for name, values in CATEGORICAL_VALUES.items():  # validate's categorical values are the space's
        (hp,) = [h for h in space.hyperparameters if h.name == name]
        assert set(values) == {v for v in hp.values if v is not None}, name


def test_validate_flags_categorical_values_outside_the_space() -> None:
    assert any(
        "'data_augmentation' is not one of" in m
        for m in messages(make_run(data_augmentation="random-augment"), make_curve())
    )
    assert any("'opt' is not one of" in m for m in messages(make_run(opt="lion"), make_curve()))


def test_sampler_leaves_inactive_hyperparameters_out() -> None:
    import numpy as np

    space = SearchSpace.load("v1")
    rng = np.random.default_rng(0)
    for _ in range(200):
        s = space.sample(rng)
        assert ("momentum" in s) == (s["opt"] == "momentum")
        assert ("opt_betas" in s) == (s["opt"] in ("adam", "adamw", "adamp"))
        assert ("patience_epochs" in s) == (s["sched"] == "plateau")
    small = space.restrict(max_params_m=2.0)
    assert {m.alias for m in small.models} == {"dla46x_c", "mobilevit_xxs", "edgenext_xx_small"}
