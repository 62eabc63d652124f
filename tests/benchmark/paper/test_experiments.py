"""The paper's experiments: hub sizes, methods left out (with the reason), variants that are registered."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark import registry
from benchmark.paper.experiments import (
    Entry,
    Experiment,
    availability,
    hub_sizes,
    union_entries,
    version_experiments,
)
from benchmark.registry import MethodSpec
from benchmark.task import load_tasks


def test_hub_sizes_are_the_papers_or_scaled_to_a_smaller_hub():
    assert hub_sizes(24) == [5, 10, 15, 20]
    assert hub_sizes(30) == [5, 10, 15, 20]  # a larger hub keeps the paper's sizes
    assert hub_sizes(6) == [1, 2, 4, 5]  # 5 * 6 / 24 = 1.25 -> 1, 2.5 -> 2, 3.75 -> 4, 5
    assert hub_sizes(4) == [1, 2, 3]
    assert hub_sizes(1) == []  # the whole hub is plain quicktune


def test_an_unregistered_method_is_not_available():
    assert availability("random_search") is None
    assert "no method 'no_such_method' is registered" in str(availability("no_such_method"))


def test_fig3_lists_dehb_and_gp_as_not_available_until_they_are_registered(bench_store: Path, monkeypatch):
    tasks = load_tasks(bench_store, "micro")
    monkeypatch.delitem(registry.METHODS, "dehb", raising=False)
    (fig3,) = version_experiments(tasks, ["fig3"])
    assert "dehb" not in fig3.labels and "not available" in dict(fig3.skipped)["dehb"]
    monkeypatch.setitem(registry.METHODS, "dehb", MethodSpec("benchmark.methods.random_search:RandomSearch"))
    (fig3,) = version_experiments(tasks, ["fig3"])
    assert "dehb" in fig3.labels and "dehb" not in dict(fig3.skipped)
    monkeypatch.setitem(registry.METHODS, "dehb", MethodSpec("no_such_module:Nothing"))
    (fig3,) = version_experiments(tasks, ["fig3"])
    assert "cannot import" in dict(fig3.skipped)["dehb"]


def test_every_experiment_on_the_test_store(bench_store: Path):
    pytest.importorskip("torch")  # without it the Quick-Tune methods are "not available"
    tasks = load_tasks(bench_store, "micro")
    exps = {e.key: e for e in version_experiments(tasks)}
    assert list(exps) == ["fig3", "fig4", "fig5", "fig6", "no_hpo"]
    assert exps["fig4"].labels == ["quicktune", "quicktune-M", "quicktune-C", "quicktune-G"]
    assert exps["fig5"].labels == ["quicktune-hub1", "quicktune-hub2", "quicktune-hub3", "quicktune"]  # 4 models
    assert exps["fig6"].entries[1] == Entry("quicktune-model-first", "quicktune", {"select_model_first": True})
    # the store holds XCiT and DLA but no BEiT: that default model is left out, with the reason
    assert exps["no_hpo"].labels == ["default-XCiT", "default-DLA", "quicktune"]
    assert dict(exps["no_hpo"].skipped)["default-BEiT"].endswith(
        "no run of beit_large_patch16_512 on any of its datasets"
    )
    fig3 = 7 - len(registry.METHODS["dehb"].missing())  # dehb only where its optional package is installed
    assert len(union_entries(list(exps.values()))) == fig3 + 3 + 3 + 1 + 2  # quicktune once


def test_a_store_with_another_hub_names_its_own_default_models(bench_store: Path):
    tasks = load_tasks(bench_store, "micro")
    (no_hpo,) = version_experiments(tasks, ["no_hpo"], no_hpo_models=["edgenext_xx_small", "mobilevit_xs"])
    assert no_hpo.labels == ["default-edgenext_xx_small", "default-mobilevit_xs", "quicktune"]
    assert no_hpo.entries[0] == Entry("default-edgenext_xx_small", "default_model", {"model": "edgenext_xx_small"})
    assert no_hpo.skipped == ()  # the paper's BEiT / XCiT / DLA are not asked for
    with pytest.raises(ValueError, match=r"default_models: no run of 'efficientnet_lite0' on any dataset"):
        version_experiments(tasks, ["no_hpo"], no_hpo_models=["edgenext_xx_small", "efficientnet_lite0"])
    with pytest.raises(ValueError, match="different models"):
        version_experiments(tasks, ["no_hpo"], no_hpo_models=["mobilevit_xs", "mobilevit_xs"])


def test_meta_learning_methods_need_a_second_dataset(bench_store: Path):
    pytest.importorskip("torch")
    (fig4,) = version_experiments(load_tasks(bench_store, "micro", ["A"]), ["fig4"])
    assert fig4.labels == ["quicktune-M"]  # the only one that does not meta-learn
    assert "only one dataset" in dict(fig4.skipped)["quicktune"]
    (fig4,) = version_experiments(load_tasks(bench_store, "micro", ["A"]), ["fig4"], n_datasets=3)
    assert fig4.labels == ["quicktune", "quicktune-M", "quicktune-C", "quicktune-G"]  # trains on B and C


def test_bad_experiment_names_and_clashing_labels_are_errors(bench_store: Path):
    with pytest.raises(ValueError, match=r"unknown experiments \['fig9'\]"):
        version_experiments(load_tasks(bench_store, "micro"), ["fig9"])
    a = Experiment("x", "micro", (Entry("m", "quicktune", {"hub_size": 2}),))
    b = Experiment("y", "micro", (Entry("m", "quicktune", {"hub_size": 3}),))
    with pytest.raises(ValueError, match="label 'm' names two methods"):
        union_entries([a, b])
