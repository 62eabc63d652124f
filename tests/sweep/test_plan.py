"""Planning: deterministic, de-duplicated, prefix-stable pipeline samples; dataset discovery; grouping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from metagen.search_space import Hyperparameter, SearchSpace
from metagen.store.schema import make_run_id, pipeline_id
from metagen.sweep.errors import SweepConfigError
from metagen.sweep.plan import (
    DatasetRef,
    RunSpec,
    chunk,
    dataset_rng,
    deal,
    default_pipelines,
    plan_runs,
    resolve_dataset_paths,
    sample_pipelines,
)


def resolver(dataset: str, model: str, hp: dict[str, Any]) -> tuple[str, str]:
    pid = pipeline_id(model, hp)
    return make_run_id("micro", Path(dataset).name, pid, 0), pid


DATASETS = [DatasetRef("/d/PNU", "PNU"), DatasetRef("/d/BCT", "BCT")]


def test_plan_is_deterministic_and_unique_per_dataset() -> None:
    space = SearchSpace.load("v1")
    a = plan_runs(DATASETS, space, 5, seed=3, resolve=resolver)
    b = plan_runs(DATASETS, space, 5, seed=3, resolve=resolver)
    assert [r.run_id for r in a.runs] == [r.run_id for r in b.runs]
    assert len(a.runs) == 10
    for name in ("PNU", "BCT"):
        pids = [r.pipeline_id for r in a.runs if r.dataset_name == name]
        assert len(set(pids)) == 5
    assert [r.index for r in a.runs] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]  # round-robin over datasets
    assert [r.dataset_name for r in a.runs[:2]] == ["PNU", "BCT"]
    other = plan_runs(DATASETS, space, 5, seed=4, resolve=resolver)
    assert {r.pipeline_id for r in other.runs} != {r.pipeline_id for r in a.runs}


def test_plan_is_prefix_stable_and_independent_of_other_datasets() -> None:
    space = SearchSpace.load("v1")
    small = plan_runs(DATASETS, space, 3, seed=0, resolve=resolver)
    large = plan_runs(DATASETS, space, 6, seed=0, resolve=resolver)
    for name in ("PNU", "BCT"):
        s = [r.run_id for r in small.runs if r.dataset_name == name]
        g = [r.run_id for r in large.runs if r.dataset_name == name]
        assert g[:3] == s
    alone = plan_runs(DATASETS[1:], space, 3, seed=0, resolve=resolver)
    assert [r.run_id for r in alone.runs] == [r.run_id for r in small.runs if r.dataset_name == "BCT"]


def test_default_pipelines_come_first_and_leave_the_sample_unchanged() -> None:
    space = SearchSpace.load("hub6")
    plain = plan_runs(DATASETS, space, 4, seed=0, resolve=resolver)
    with_defaults = plan_runs(DATASETS, space, 4, seed=0, resolve=resolver, include_defaults=True)
    defaults = [r for r in with_defaults.runs if r.is_default]
    assert len(defaults) == 2 * len(space.models)  # one per model and dataset (none was sampled here)
    assert with_defaults.runs[: len(defaults)] == tuple(defaults)  # trained first, round-robin over datasets
    assert [r for r in with_defaults.runs if not r.is_default] == list(plain.runs)
    first = defaults[0]
    assert first.model == space.models[0].name and first.dataset_name == "PNU"
    assert first.hp == {k: v for k, v in space.default_pipeline(first.model).items() if k != "model"}
    assert first.hp["opt"] == "sgd" and first.hp["batch_size"] == 64 and first.hp["warmup_epochs"] == 2
    assert "momentum" not in first.hp  # inactive under the defaults
    assert RunSpec.from_dict(first.to_dict()) == first
    older = {k: v for k, v in first.to_dict().items() if k != "is_default"}  # a plan.json written before the field
    assert not RunSpec.from_dict(older).is_default


def test_a_sampled_pipeline_equal_to_a_default_is_not_planned_twice() -> None:
    space = SearchSpace.load("hub6").restrict(models=["edgenext_xx_small"])
    one = [Hyperparameter(h.name, (h.default,), h.parent, h.parent_values, h.default, True)
           for h in space.hyperparameters]  # fmt: skip
    tiny = SearchSpace("tiny", space.models, tuple(one))  # its only pipeline is the default one
    plan = plan_runs(DATASETS[:1], tiny, 1, seed=0, resolve=resolver, include_defaults=True)
    assert len(plan.runs) == 1 and not plan.runs[0].is_default


def test_a_space_without_defaults_is_refused_when_defaults_are_wanted() -> None:
    with pytest.raises(SweepConfigError, match="include_defaults=true: search space 'exp5' declares no default"):
        default_pipelines(SearchSpace.load("exp5"))


def test_plan_marks_complete_runs() -> None:
    space = SearchSpace.load("v1")
    full = plan_runs(DATASETS, space, 3, seed=0, resolve=resolver)
    done = {full.runs[0].run_id, full.runs[3].run_id, "micro-other-run-s0"}
    plan = plan_runs(DATASETS, space, 3, seed=0, resolve=resolver, complete=done)
    assert plan.complete == {full.runs[0].run_id, full.runs[3].run_id}
    assert [r.run_id for r in plan.todo] == [r.run_id for i, r in enumerate(full.runs) if i not in (0, 3)]
    assert plan.by_dataset() == {"PNU": (3, 1), "BCT": (3, 1)}


def test_sampling_skips_duplicates_and_fails_when_the_space_is_too_small() -> None:
    base = SearchSpace.load("v1").restrict(models=["dla46x_c"])
    tiny = SearchSpace(base.name, base.models, (Hyperparameter("lr", (0.1, 0.01)),))
    got = sample_pipelines(tiny, 2, dataset_rng(0, "x"), lambda m, h: pipeline_id(m, h))
    assert sorted(h["lr"] for _, h, _ in got) == [0.01, 0.1]
    with pytest.raises(SweepConfigError, match="too few different pipelines"):
        sample_pipelines(tiny, 3, dataset_rng(0, "x"), lambda m, h: pipeline_id(m, h))


def test_same_dataset_name_twice_is_rejected() -> None:
    twins = [DatasetRef("/a/PNU", "PNU"), DatasetRef("/b/PNU", "PNU")]
    with pytest.raises(SweepConfigError, match="same dataset name"):
        plan_runs(twins, SearchSpace.load("v1"), 1, seed=0, resolve=resolver)


def test_resolve_dataset_paths_accepts_datasets_and_suites(tmp_path: Path) -> None:
    for name in ("b", "a"):
        (tmp_path / "suite" / name).mkdir(parents=True)
        (tmp_path / "suite" / name / "labels.csv").write_text("FILE_NAME,CATEGORY\n")
    (tmp_path / "suite" / "notes").mkdir()
    single = tmp_path / "suite" / "a"
    got = resolve_dataset_paths([str(tmp_path / "suite"), str(single)])
    assert got == [single.resolve(), (tmp_path / "suite" / "b").resolve()]  # sorted, de-duplicated


def test_resolve_dataset_paths_names_every_bad_path(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SweepConfigError) as e:
        resolve_dataset_paths([str(tmp_path / "missing"), str(tmp_path / "empty")])
    assert "does not exist" in str(e.value) and "neither a Meta-Album dataset" in str(e.value)


def test_chunk_and_deal() -> None:
    runs = plan_runs(DATASETS, SearchSpace.load("v1"), 5, seed=0, resolve=resolver).runs
    groups = chunk(runs, 4)
    assert [len(g) for g in groups] == [4, 4, 2] and sum(groups, ()) == runs
    dealt = deal(runs, 3)
    assert [len(g) for g in dealt] == [4, 3, 3]
    assert sorted(r.run_id for r in sum(dealt, ())) == sorted(r.run_id for r in runs)
    assert len(deal(runs[:2], 5)) == 2
    with pytest.raises(ValueError):
        chunk(runs, 0)
