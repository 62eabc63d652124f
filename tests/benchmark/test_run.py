"""The runner: RESULTS layout, resume, parallel processes, run.json, CLI errors; the core imports no torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from benchmark.config import RunConfig
from benchmark.figures import make_figures
from benchmark.metrics import proposal_counts
from benchmark.registry import UnknownMethodError, UnknownOptionError, method_names, method_options
from benchmark.results import (
    RESULT_SCHEMA,
    ResultsError,
    cell_files,
    cell_path,
    load_results,
    parse_cell_path,
    read_cell_stats,
)
from benchmark.runner import plan, run_benchmark
from benchmark.task import TaskError
from tests.benchmark.conftest import build_store

ROOT = Path(__file__).resolve().parents[2]


def config(store: Path, out: Path, **kw: object) -> RunConfig:
    base: dict = {"methods": ["random_search", "asha"], "seeds": [0, 1], "budget_s": 1500.0, "progress": False}
    return RunConfig(store=str(store), out=str(out), **{**base, **kw})


def test_results_layout_and_resume(bench_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "res"
    summary = run_benchmark(config(bench_store, out))
    assert (summary.done, summary.skipped, summary.failed) == (12, 0, [])
    files = cell_files(out)
    assert len(files) == 12
    assert files[0] == cell_path(out, "micro", "asha", "A", 0)
    assert parse_cell_path(files[0]) == ("micro", "asha", "A", 0)
    df = load_results(out).events
    assert df.schema == pl.Schema(RESULT_SCHEMA)
    assert set(df["method"]) == {"random_search", "asha"} and set(df["seed"]) == {0, 1}
    assert (df["budget_s"] == 1500.0).all() and (df["time"] <= 1500.0).all()
    record = json.loads((out / "run.json").read_text())
    assert record["store_hash"] and record["budget_s"] == 1500.0 and record["overhead"] == "none"
    assert record["datasets"] == ["A", "B", "C"] and record["method_options"]["asha"] == {"eta": 3, "min_budget": 1}

    again = run_benchmark(config(bench_store, out))
    assert (again.done, again.skipped) == (0, 12)
    victim = cell_path(out, "micro", "random_search", "B", 1)
    before = pl.read_parquet(victim)
    victim.unlink()
    third = run_benchmark(config(bench_store, out, seeds=[0, 1, 2], methods=["random_search"]))
    assert (third.done, third.skipped) == (4, 5)  # the deleted cell and three new seed-2 cells
    assert pl.read_parquet(victim).equals(before)
    assert json.loads((out / "run.json").read_text())["seeds"] == [0, 1, 2]


def test_cells_are_planned_seed_major_so_a_partial_run_is_balanced(bench_store: Path, tmp_path: Path) -> None:
    jobs, _ = plan(config(bench_store, tmp_path / "res"))
    keys = [(j.seed, j.dataset, j.method) for j in jobs]
    assert keys[:3] == [(0, "A", "random_search"), (0, "A", "asha"), (0, "B", "random_search")]
    assert keys == sorted(keys, key=lambda k: (k[0], k[1]))


def test_resuming_with_another_budget_or_overhead_is_refused(bench_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "res"
    run_benchmark(config(bench_store, out, methods=["random_search"], seeds=[0]))
    with pytest.raises(ResultsError, match=r"budget_s was 1500\.0, now 900\.0"):
        run_benchmark(config(bench_store, out, methods=["random_search"], seeds=[0], budget_s=900.0))
    with pytest.raises(ResultsError, match="overhead"):
        run_benchmark(config(bench_store, out, methods=["random_search"], seeds=[0], overhead="2"))


def test_parallel_processes_give_the_same_files(bench_store: Path, tmp_path: Path) -> None:
    serial = run_benchmark(config(bench_store, tmp_path / "a", datasets=["A", "B"]))
    parallel = run_benchmark(config(bench_store, tmp_path / "b", datasets=["A", "B"], jobs=2))
    assert serial.done == parallel.done == 8
    assert load_results(tmp_path / "a").events.equals(load_results(tmp_path / "b").events)


def test_names_that_need_escaping_go_from_run_to_figures(tmp_path: Path) -> None:
    """A dataset named "Plant Village" (a space: percent-encoded in its path) is written by the runner
    and read back by the figures with its real name."""
    store = build_store(tmp_path / "store", datasets=("Plant Village", "B"), n_pipelines=8)
    out = tmp_path / "res"
    summary = run_benchmark(config(store, out, methods=["random_search"], seeds=[0]))
    assert summary.done == 2 and not summary.failed
    assert cell_path(out, "micro", "random_search", "Plant Village", 0) in cell_files(out)
    assert "dataset=Plant%20Village" in {p.parent.name for p in cell_files(out)}
    results = load_results(out)
    assert sorted(results.runs["dataset"]) == ["B", "Plant Village"]
    make_figures(out, tmp_path / "figs", fractions=(1.0,), formats=("png",), dpi=30)
    table = pl.read_csv(tmp_path / "figs" / "summary.csv")
    assert table["n_datasets"].to_list() == [2]


def test_clear_errors(bench_store: Path, tmp_path: Path) -> None:
    with pytest.raises(UnknownMethodError, match=r"unknown method 'nope'; registered methods: \[.*'bohb'"):
        run_benchmark(config(bench_store, tmp_path / "r", methods=["nope"]))
    with pytest.raises(TaskError, match="not a learning-curve store"):
        run_benchmark(config(tmp_path / "missing", tmp_path / "r"))
    with pytest.raises(TaskError, match="version 'mini' not in store"):
        run_benchmark(config(bench_store, tmp_path / "r", version="mini"))
    with pytest.raises(TaskError, match=r"datasets \['Q'\] not in version"):
        run_benchmark(config(bench_store, tmp_path / "r", datasets=["Q"]))
    with pytest.raises(ValueError, match="method_options for methods not in"):
        run_benchmark(config(bench_store, tmp_path / "r", method_options={"bohb": {"eta": 2}}))


def test_a_failing_cell_is_reported_and_retried(bench_store: Path, tmp_path: Path) -> None:
    cfg = config(bench_store, tmp_path / "r", methods=["default_model"], seeds=[0],
                 method_options={"default_model": {"model": "beit_large_patch16_512"}})  # fmt: skip
    summary = run_benchmark(cfg)
    assert summary.done == 0 and len(summary.failed) == 3
    assert "no candidate in task A" in str(summary.failed[0].error)
    assert "FAILED default_model / A / seed 0" in str(summary)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "benchmark.run", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_cli(bench_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    ok = _cli(f"store={bench_store}", f"out={out}", "methods=[random_search,bohb]", "seeds=[0]",
              "datasets=[A]", "budget_s=1000", "progress=false", "+method_options.bohb.acquisition=all")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "2 cells replayed" in ok.stdout and len(cell_files(out)) == 2
    assert json.loads((out / "run.json").read_text())["method_options"]["bohb"]["acquisition"] == "all"
    bad = _cli(f"store={bench_store}", f"out={out}", "methods=[nope]", "progress=false")
    assert bad.returncode == 2 and "unknown method 'nope'" in bad.stderr and "random_search" in bad.stderr
    missing = _cli(f"store={tmp_path / 'none'}", f"out={out}", "progress=false")
    assert missing.returncode == 2 and "not a learning-curve store" in missing.stderr
    typo = _cli(f"store={bench_store}", f"out={tmp_path / 'typo'}", "methods=[random_search,asha]", "datasets=[A]",
                "progress=false", "+method_options.asha.etaa=2")  # fmt: skip
    assert typo.returncode == 2 and "method 'asha' has no option ['etaa']; its options are ['eta', 'min_budget']" in (
        typo.stderr
    )
    assert not (tmp_path / "typo").exists()  # nothing ran, nothing was written
    no_lora = _cli(f"store={bench_store}", f"out={tmp_path / 'lora'}", "methods=[random_search,lora]", "progress=false")
    assert no_lora.returncode == 2 and "method 'lora': task A (micro) holds no LoRA" in no_lora.stderr
    assert not (tmp_path / "lora").exists()


def test_core_imports_neither_torch_nor_timm(frozen_store: Path, tmp_path: Path) -> None:
    bench_store = frozen_store  # every method runs on it, the Exp. 5 baselines included
    names = method_names(needs_torch=False)
    code = f"""
import sys
import benchmark, benchmark.task, benchmark.replay, benchmark.clock, benchmark.registry, benchmark.results
import benchmark.runner, benchmark.config, benchmark.run
from benchmark.runner import run_benchmark
from benchmark.config import RunConfig
s = run_benchmark(RunConfig(store={str(bench_store)!r}, out={str(tmp_path / "o")!r}, methods={names!r},
                            seeds=[0], datasets=['A'], budget_s=800.0, progress=False))
assert not s.failed, s
bad = [m for m in ("torch", "timm", "gpytorch") if m in sys.modules]
assert not bad, bad
print("clean")
"""
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "clean" in res.stdout, res.stderr


def test_method_defaults_come_from_the_factory_and_old_records_still_match(bench_store: Path, tmp_path: Path) -> None:
    assert method_options("hyperband") == {"eta": 3, "min_budget": 1}  # the constructor's defaults
    assert method_options("quicktune-M")["meta_learn"] is False and method_options("quicktune")["meta_learn"] is True
    assert method_options("bohb", {"eta": 2})["eta"] == 2
    out = tmp_path / "res"
    run_benchmark(config(bench_store, out, methods=["bohb"], seeds=[0], datasets=["A"]))
    record = json.loads((out / "run.json").read_text())
    assert record["method_options"]["bohb"]["num_samples"] == 64
    record["method_options"]["bohb"] = {"eta": 3}  # as written when fewer defaults were recorded
    (out / "run.json").write_text(json.dumps(record))
    again = run_benchmark(config(bench_store, out, methods=["bohb"], seeds=[0], datasets=["A"]))
    assert again.skipped == 1
    with pytest.raises(ResultsError, match="holds results of method 'bohb' with options"):
        run_benchmark(config(bench_store, out, methods=["bohb"], seeds=[0], datasets=["A"],
                             method_options={"bohb": {"num_samples": 32}}))  # fmt: skip


def test_gp_methods_record_every_schedule_field_so_a_changed_default_is_refused(
    bench_store: Path, tmp_path: Path
) -> None:
    from benchmark.methods.graybox_bo import RefitSchedule

    recorded = method_options("dyhpo")["schedule"]
    assert recorded == json.loads(json.dumps(RefitSchedule().__dict__)) and recorded["restart_mse"] is None
    assert method_options("quicktune-M", {"schedule": {"refine_epochs": 5}})["schedule"]["initial_epochs"] == 1000
    out = tmp_path / "res"
    short = {"dyhpo": {"schedule": {"initial_epochs": 5, "refine_epochs": 1}}}
    first = run_benchmark(config(bench_store, out, methods=["dyhpo"], seeds=[0], datasets=["A"], budget_s=300.0,
                                 method_options=short))  # fmt: skip
    assert not first.failed and first.planned == 1
    record = json.loads((out / "run.json").read_text())
    assert record["method_options"]["dyhpo"]["schedule"] == {**recorded, "initial_epochs": 5, "refine_epochs": 1}
    for old in ({**record["method_options"]["dyhpo"]["schedule"], "restart_mse": 0.15}, None):
        # cells replayed under other schedule defaults (None: a record from before schedules were spelled out)
        record["method_options"]["dyhpo"]["schedule"] = old
        (out / "run.json").write_text(json.dumps(record))
        with pytest.raises(ResultsError, match="holds results of method 'dyhpo' with options"):
            run_benchmark(config(bench_store, out, methods=["dyhpo"], seeds=[0], datasets=["A"], budget_s=300.0,
                                 method_options=short))  # fmt: skip


def test_cells_print_progress_and_their_time_and_gp_methods_their_schedule(
    bench_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmark.cells import CellJob, optimizer_note, run_cell
    from benchmark.methods.graybox_bo import RefitSchedule

    job = CellJob(str(bench_store), "micro", "random_search", {}, "A", 0, 1000.0, "none", 1, str(tmp_path / "p"),
                  progress_every_s=1e-9)  # fmt: skip
    outcome = run_cell(job)
    printed = capsys.readouterr().out
    assert outcome.error is None and "... random_search / A / seed 0: step 1, simulated 0 / 1000 s" in printed
    assert outcome.line().startswith(f"random_search / A / seed 0: {outcome.steps} steps, {outcome.rows} epochs in ")
    assert "final regret" in outcome.line()

    class GP:
        schedule = RefitSchedule(refine_epochs=5)

    assert optimizer_note(GP()) == "schedule=custom(refine_epochs=5)" and optimizer_note(object()) == ""

    class MetaLearned(GP):
        meta_label = "default"

    assert optimizer_note(MetaLearned()) == "schedule=custom(refine_epochs=5), meta=default"


def test_labelled_variants_coexist_in_one_folder_and_reach_the_figures(bench_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "res"
    variants = {
        "hyperband@eta2": {"method": "hyperband", "options": {"eta": 2}},
        "hyperband@eta4": {"method": "hyperband", "options": {"eta": 4}},
    }
    cfg = config(bench_store, out, methods=["hyperband", "hyperband@eta2"], seeds=[0], datasets=["A", "B"],
                 variants=variants)  # fmt: skip
    assert run_benchmark(cfg).done == 4
    # a second run adds another variant of the same method to the same folder
    assert run_benchmark(config(bench_store, out, methods=["hyperband@eta4"], seeds=[0], datasets=["A", "B"],
                                variants=variants)).done == 2  # fmt: skip
    record = json.loads((out / "run.json").read_text())
    assert record["variants"] == {
        "hyperband@eta2": {"method": "hyperband", "options": {"eta": 2}},
        "hyperband@eta4": {"method": "hyperband", "options": {"eta": 4}},
    }
    assert record["method_options"]["hyperband@eta4"] == {"eta": 4, "min_budget": 1}
    assert record["method_options"]["hyperband"] == {"eta": 3, "min_budget": 1}
    results = load_results(out)
    assert results.methods() == ["hyperband", "hyperband@eta2", "hyperband@eta4"]
    assert set(results.events.filter(pl.col("method") == "hyperband@eta2")["method"]) == {"hyperband@eta2"}
    # the variants really ran with their own options: eta changes Hyperband's brackets
    asks = {m: results.events.filter(pl.col("method") == m).height for m in results.methods()}
    assert len(set(asks.values())) > 1, asks
    make_figures(out, tmp_path / "figs", fractions=(1.0,), formats=("png",), dpi=30)
    table = pl.read_csv(tmp_path / "figs" / "summary.csv")
    assert sorted(table["method"].to_list()) == ["hyperband", "hyperband@eta2", "hyperband@eta4"]


def test_variant_errors_come_before_any_cell(bench_store: Path, tmp_path: Path) -> None:
    def run(**variants: dict) -> None:
        run_benchmark(config(bench_store, tmp_path / "r", methods=list(variants), variants=variants))

    with pytest.raises(ValueError, match="variant 'asha' has the name of a registered method"):
        run(asha={"method": "asha", "options": {"eta": 2}})
    with pytest.raises(ValueError, match=r"variant 'fast' must be \{method: REGISTERED_METHOD"):
        run(fast={"methd": "asha"})
    with pytest.raises(UnknownMethodError, match="unknown method 'ashaa'"):
        run(fast={"method": "ashaa"})
    with pytest.raises(UnknownOptionError, match=r"'asha' has no option \['etaa'\]"):
        run(fast={"method": "asha", "options": {"etaa": 2}})
    assert not (tmp_path / "r").exists()
    run(fast={"method": "asha", "options": {"eta": 2}})
    with pytest.raises(ResultsError, match="variant 'fast' of method 'asha', now of 'hyperband'"):
        run(fast={"method": "hyperband", "options": {"eta": 2}})


def test_variants_from_the_command_line(bench_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    ok = _cli(f"store={bench_store}", f"out={out}", "methods=[asha,asha-eta2]", "seeds=[0]", "datasets=[A]",
              "budget_s=1000", "progress=false", "+variants.asha-eta2.method=asha",
              "+variants.asha-eta2.options.eta=2")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert json.loads((out / "run.json").read_text())["method_options"]["asha-eta2"]["eta"] == 2
    assert {parse_cell_path(p)[1] for p in cell_files(out)} == {"asha", "asha-eta2"}


def test_bohb_model_proposals_are_stored_with_each_replay_and_reported(tmp_path: Path) -> None:
    # 150 pipelines: enough results at one budget for BOHB's KDE over the store's 32 varying hyperparameters
    store = build_store(tmp_path / "store", datasets=("A", "B"), n_pipelines=150)
    out = tmp_path / "res"
    variants = {"bohb-never": {"method": "bohb", "options": {"min_points_in_model": 10_000}}}
    cfg = config(store, out, methods=["random_search", "bohb", "bohb-never"], seeds=[0], budget_s=1e6,
                 variants=variants)  # fmt: skip
    assert run_benchmark(cfg).done == 6
    stats = read_cell_stats(cell_path(out, "micro", "bohb", "A", 0))
    assert stats["model_proposals"] > 0 and stats["proposals"] == stats["model_proposals"] + stats["random_proposals"]
    assert read_cell_stats(cell_path(out, "micro", "random_search", "A", 0)) == {}
    results = load_results(out)
    counts = proposal_counts(results).rows_by_key("method", named=True, unique=True)
    assert counts["bohb-never"]["model_proposals"] == 0 and counts["bohb-never"]["n_replays"] == 2
    both = sum(read_cell_stats(cell_path(out, "micro", "bohb", d, 0))["model_proposals"] for d in ("A", "B"))
    assert counts["bohb"]["model_proposals"] == both and "random_search" not in counts
    make_figures(out, tmp_path / "figs", fractions=(1.0,), formats=("png",), dpi=30)
    table = pl.read_csv(tmp_path / "figs" / "summary.csv").rows_by_key("method", named=True, unique=True)
    assert table["bohb"]["model_proposals"] == both and table["random_search"]["model_proposals"] is None
    md = (tmp_path / "figs" / "summary.md").read_text()
    assert f"* bohb (micro): model proposals {both} of {counts['bohb']['proposals']}" in md
    assert "* bohb-never (micro): model proposals 0 of" in md and "no model was ever fitted" in md
