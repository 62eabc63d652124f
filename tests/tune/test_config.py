"""Settings of metagen.tune and what is refused before any training."""

from __future__ import annotations

from pathlib import Path

import pytest

from metagen.tune.config import Budget, TuneConfigError, parse_args, parse_budget
from metagen.tune.session import prepare
from tests.tune.conftest import META_STORE, tune_config


@pytest.mark.parametrize(
    ("text", "budget"),
    [
        ("2h", Budget("s", 7200.0)),
        ("600s", Budget("s", 600.0)),
        ("1.5m", Budget("s", 90.0)),
        ("30ep", Budget("ep", 30.0)),
    ],
)
def test_budgets_parse(text: str, budget: Budget) -> None:
    assert parse_budget(text) == budget


@pytest.mark.parametrize("text", ["", "2 hours", "0s", "-1h", "2.5ep", "0ep", "ep"])
def test_bad_budgets_are_refused(text: str) -> None:
    with pytest.raises(TuneConfigError, match="budget"):
        parse_budget(text)


def test_arguments_are_typed_and_unknown_keys_refused() -> None:
    cfg = parse_args(["dataset=D", "store=S", "meta_store=M", "budget=1h", "workers=3", "epochs=none"])
    assert cfg.workers == 3 and cfg.epochs is None and cfg.parsed_budget == Budget("s", 3600.0)
    with pytest.raises(TuneConfigError, match="unknown setting 'wokers'"):
        parse_args(["wokers=2"])
    with pytest.raises(TuneConfigError, match="not a number"):
        parse_args(["workers=two"])
    with pytest.raises(TuneConfigError, match="missing required settings"):
        parse_args(["dataset=D"]).check()


def _nothing_trained(tmp_path: Path) -> bool:
    return not (tmp_path / "store.checkpoints").exists() and not (tmp_path / "out").exists()


def test_bad_input_is_refused_before_training(tmp_path: Path, new_dataset: Path) -> None:
    cases = [
        ({"dataset": str(tmp_path / "nope")}, "no Meta-Album dataset there"),
        ({"search_space": "cpu8"}, "was not made with search space 'cpu8'"),
        ({"budget": "0.01s"}, "shorter than one epoch"),
        ({"method": "quiktune"}, r"registered methods: \[.*'quicktune'.*'random_search'"),
        ({"meta_store": str(tmp_path)}, "not a learning-curve store"),
    ]
    for override, message in cases:
        with pytest.raises(TuneConfigError, match=message):
            prepare(tune_config(tmp_path, new_dataset, **override))
    assert _nothing_trained(tmp_path)


def test_candidates_are_a_fixed_sample_of_the_meta_stores_space(tmp_path: Path, new_dataset: Path) -> None:
    a = prepare(tune_config(tmp_path, new_dataset, candidates=5))
    b = prepare(tune_config(tmp_path, new_dataset, candidates=5))
    assert [c.run_id for c in a.candidates] == [c.run_id for c in b.candidates]
    assert a.info.space == "hub6" and a.epochs == 3 and a.version == "offline64"
    assert len({c.pipeline_id for c in a.candidates}) == 5
    assert set(a.view.models) <= set(a.info.models)
    for c, f in zip(a.candidates, a.finetune, strict=True):  # random-init models get no Co-Tuning
        if c.model in a.info.random_init:
            assert f["pretrained"] == "none" and c.hp["cotuning_reg"] == 0.0
    other = prepare(tune_config(tmp_path, new_dataset, candidates=5, seed=1))
    assert [c.run_id for c in other.candidates] != [c.run_id for c in a.candidates]
    assert a.view.features.shape[0] == 5 and str(META_STORE) == a.info.path
