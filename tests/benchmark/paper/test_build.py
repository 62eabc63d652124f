"""python -m benchmark.paper: plans every cell, resumes (a second run replays nothing), writes every file of the
index, and refuses bad input before any cell runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmark import registry
from benchmark.config import PaperConfig
from benchmark.paper.build import plan_paper, run_paper
from benchmark.paper.common import read_manifest
from benchmark.registry import UnknownOptionError
from benchmark.results import cell_files
from metagen.store import StoreError

REPO = Path(__file__).resolve().parents[3]
FAST = {"initial_steps": 2, "initial_epochs": 8, "refine_epochs": 2}
META = {"iterations": 20, "batch_size": 8, "val_every": 10, "val_episodes": 2, "hidden": 8, "out_dim": 8}
QT = {"schedule": FAST, "meta_config": META}
CHEAP = {"quicktune": QT, "quicktune-C": QT, "quicktune-G": QT, "quicktune-M": {"schedule": FAST},
         "dyhpo": {"schedule": FAST}}  # fmt: skip


def _config(store: Path, out: Path, **kw: Any) -> PaperConfig:
    settings: dict[str, Any] = {"budget": 300.0, "overhead": "none", "method_options": CHEAP, "progress": False}
    return PaperConfig(store=str(store), out=str(out), **(settings | {"max_datasets": 2} | kw))


def test_resumes_without_the_torch_methods(bench_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The fast version (the torch methods and the optional dehb unregistered, so listed as not available): plan,
    run, resume."""
    for name in [n for n, s in registry.METHODS.items() if s.needs_torch or s.requires]:
        monkeypatch.delitem(registry.METHODS, name)
    out = tmp_path / "paper"
    plan, written = run_paper(_config(bench_store, out, method_options={}), log=lambda _: None)
    assert plan.runs["micro"].methods == ["bohb", "asha", "random_search", "default-XCiT", "default-DLA"]
    assert plan.summaries["micro"].done == 10 and len(cell_files(out / "runs" / "micro")) == 10
    index = (out / "index.md").read_text()
    assert "**quicktune** skipped: not available" in index and "**quicktune-hub1** skipped" in index
    assert all(p.is_file() and (p.name == "index.md" or f"({p.name})" in index) for p in written)
    again, _ = run_paper(_config(bench_store, out, method_options={}), log=lambda _: None)
    assert again.todo == {"micro": 0} and again.summaries["micro"].done == 0
    assert [r["replayed"] for r in read_manifest(out)["history"]] == [10, 0]


@pytest.mark.slow
def test_plans_runs_resumes_and_writes_every_file_of_the_index(bench_store: Path, tmp_path: Path):
    pytest.importorskip("torch")  # most of the paper's experiments are Quick-Tune's
    out = tmp_path / "paper"
    lines: list[str] = []
    plan, written = run_paper(_config(bench_store, out), log=lines.append)
    labels = plan.runs["micro"].methods
    assert plan.planned == {"micro": len(labels) * 2} and plan.todo == plan.planned  # 2 datasets x 1 seed
    assert {"quicktune", "quicktune-M", "quicktune-hub1", "quicktune-model-first", "default-DLA", "bohb"} <= set(labels)
    assert plan.summaries["micro"].done == plan.planned["micro"] and not plan.summaries["micro"].failed
    assert len(cell_files(out / "runs" / "micro")) == plan.planned["micro"]
    assert any("dehb skipped: not available" in line for line in lines) or "dehb" in labels
    index = (out / "index.md").read_text()
    for p in written:
        assert p.is_file() and p.stat().st_size > 0
        assert p.name == "index.md" or f"({p.name})" in index, p.name
    expected = {"fig3_baselines_regret.png", "fig4_ablations_rank.png", "fig6_model_first_regret.png"}
    expected |= {"fig5_hub_size.png", "table_no_hpo.md", "fig1_model_ranks_micro.png"}
    assert expected <= {p.name for p in written}
    assert read_manifest(out)["history"][0]["replayed"] == plan.planned["micro"]
    mtimes = {f: f.stat().st_mtime_ns for f in cell_files(out / "runs" / "micro")}

    again, written_again = run_paper(_config(bench_store, out), log=lines.append)
    assert again.todo == {"micro": 0} and again.summaries["micro"].done == 0
    assert {f: f.stat().st_mtime_ns for f in cell_files(out / "runs" / "micro")} == mtimes  # no cell rewritten
    assert [p.name for p in written_again] == [p.name for p in written]
    history = read_manifest(out)["history"]  # both runs, the first one's work kept
    n = plan.planned["micro"]
    assert [(r["replayed"], r["already_done"]) for r in history] == [(n, 0), (0, n)]
    assert f"0 cells replayed, {plan.planned['micro']} already done" in (out / "index.md").read_text()


def test_a_misspelled_option_or_a_bad_store_errors_before_any_cell(bench_store: Path, tmp_path: Path):
    pytest.importorskip("torch")
    out = tmp_path / "paper"
    with pytest.raises(UnknownOptionError, match=r"method 'asha' has no option \['etaa'\]"):
        run_paper(_config(bench_store, out, method_options={"asha": {"etaa": 2}}))
    with pytest.raises(ValueError, match=r"method_options for \['ashaa'\]"):
        plan_paper(_config(bench_store, out, method_options={"ashaa": {"eta": 2}}))
    with pytest.raises(StoreError, match="not a learning-curve store"):
        plan_paper(_config(tmp_path / "nowhere", out))
    with pytest.raises(StoreError, match=r"has no version \['mini'\]"):
        plan_paper(_config(bench_store, out, versions=["mini"]))
    with pytest.raises(ValueError, match="unknown experiments"):
        plan_paper(_config(bench_store, out, experiments=["fig7"]))
    with pytest.raises(ValueError, match="default_models: no run of 'beit_base'"):
        plan_paper(_config(bench_store, out, default_models=["dla46x_c", "beit_base"]))
    assert not cell_files(out / "runs" / "micro")


def test_named_default_models_are_planned_under_their_names(bench_store: Path, tmp_path: Path):
    plan = plan_paper(_config(bench_store, tmp_path / "paper", experiments=["no_hpo"], default_models=["dla46x_c"]))
    assert "default-dla46x_c" in plan.runs["micro"].methods and "default-XCiT" not in plan.runs["micro"].methods


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "benchmark.paper", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip


def test_cli_refuses_a_misspelled_key_and_a_missing_store(bench_store: Path, tmp_path: Path):
    bad_key = _cli(f"store={bench_store}", "out=P", "seed=[1]", cwd=tmp_path)
    assert bad_key.returncode == 2 and "seed" in bad_key.stderr and "Traceback" not in bad_key.stderr
    no_store = _cli("store=nowhere", "out=P", cwd=tmp_path)
    assert no_store.returncode == 2 and "nowhere" in no_store.stderr and "Traceback" not in no_store.stderr
    assert not (tmp_path / "P" / "runs").exists()
    assert "experiments" in _cli("--help", cwd=tmp_path).stdout
