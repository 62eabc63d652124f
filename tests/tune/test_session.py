"""Live tuning sessions on a tiny new dataset with the bundled store as meta-data (slow: real training)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from metagen.store import StoreReader
from metagen.tune.config import TuneConfig
from metagen.tune.journal import Journal
from metagen.tune.session import run_session
from metagen.tune.worker import checkpoint_curve
from tests.tune.conftest import ROOT, tune_config

pytestmark = pytest.mark.slow


def stored(store: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    r = StoreReader(store)
    return r.scan_runs().collect(), r.scan_curves().collect()


def journal_epochs(out: Path) -> list[tuple[int, int]]:
    return [(s["pipeline"], e) for s in Journal(out / "journal.jsonl").of("step") for e in s["epochs"]]


def test_quicktune_session_with_two_workers_writes_every_epoch(tmp_path: Path, new_dataset: Path) -> None:
    lines: list[str] = []
    cfg = tune_config(tmp_path, new_dataset, method="quicktune", budget="4ep")
    result = run_session(cfg, log=lines.append)
    assert result.stop == "budget" and len(result.trace.epoch) == 4
    runs, curves = stored(tmp_path / "store")
    assert curves.height == 4 and runs["n_epochs"].sum() == 4  # every trained epoch is an ordinary run's epoch
    assert set(runs["dataset"]) == {"SHT"} and set(runs["dataset_version"]) == {"offline64"}
    short = runs.filter(pl.col("n_epochs") < 3)
    assert set(short["status"]) <= {"timeout"} and all(
        "metagen.tune session ended" in m for m in short["status_message"]
    )
    pairs = journal_epochs(tmp_path / "out")
    assert len(pairs) == len(set(pairs)) == 4
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["epochs_trained"] == 4 and report["best"]["accuracy"] == max(result.trace.value)
    assert Path(report["best"]["checkpoint"]).is_file()
    assert (tmp_path / "out" / "best_over_time.png").stat().st_size > 0
    assert any("incumbent" in line for line in lines) and any(line.startswith("[tune] best:") for line in lines)
    assert list((tmp_path / "cache").glob("quicktune-offline64-*.pt"))  # meta-trained surrogates cached
    again: list[str] = []
    run_session(cfg, log=again.append)  # a finished session only reports
    assert "already finished" in again[0] and stored(tmp_path / "store")[1].height == 4


@pytest.mark.parametrize("method", ["dyhpo", "asha"])
def test_other_registered_methods_drive_it(tmp_path: Path, new_dataset: Path, method: str) -> None:
    result = run_session(tune_config(tmp_path, new_dataset, method=method, budget="2ep", workers=1), log=lambda s: None)
    assert len(result.trace.epoch) == 2 and stored(tmp_path / "store")[1].height == 2


def _launch(cfg: TuneConfig, log: Path) -> subprocess.Popen:
    args = [f"{k}={'none' if v is None else v}" for k, v in cfg.to_dict().items()]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "metagen.tune", *args], stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, env=env, cwd=ROOT)  # fmt: skip


def test_sigkilled_session_resumes_without_training_an_epoch_twice(tmp_path: Path, new_dataset: Path) -> None:
    cfg = tune_config(tmp_path, new_dataset, method="random_search", budget="12ep", epochs=6, candidates=6)
    out, ck = tmp_path / "out", tmp_path / "store.checkpoints"
    proc = _launch(cfg, tmp_path / "first.log")
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and proc.poll() is None:  # kill once some epoch is checkpointed
        if ck.is_dir() and any((d / "last.pt").is_file() for d in ck.iterdir()):
            break
        time.sleep(0.5)
    assert proc.poll() is None, (tmp_path / "first.log").read_text()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)  # the workers die with the session (parent-death signal)
    before = {d.name: checkpoint_curve(ck, d.name) for d in ck.iterdir() if d.is_dir()}
    assert sum(len(c) for c in before.values()) >= 1
    second = _launch(cfg, tmp_path / "second.log")
    assert second.wait(timeout=600) == 0, (tmp_path / "second.log").read_text()
    log = (tmp_path / "second.log").read_text()
    assert "[tune] resumed:" in log and "[tune] done (budget)" in log
    runs, curves = stored(tmp_path / "store")
    assert curves.height == 12 and runs["n_epochs"].sum() == 12
    for run_id, rows in before.items():  # epochs trained before the kill are kept, not trained again
        c = curves.filter(pl.col("run_id") == run_id).sort("epoch")
        for r in rows:
            kept = c.filter(pl.col("epoch") == r.epoch)
            assert kept.height == 1
            assert kept["train_time"][0] + kept["eval_time"][0] == pytest.approx(r.cost, rel=1e-6)
    pairs = journal_epochs(out)
    assert len(pairs) == len(set(pairs)) == 12


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_slurm_session_with_two_workers(tmp_path: Path, new_dataset: Path) -> None:
    cfg = tune_config(tmp_path, new_dataset, cluster="slurm", method="asha", budget="4ep", slurm_time_min=10)
    result = run_session(cfg, log=lambda s: None)
    assert result.stop == "budget" and len(result.trace.epoch) == 4
    runs, curves = stored(tmp_path / "store")
    assert curves.height == 4 and runs["n_epochs"].sum() == 4
    kinds = [e["kind"] for e in Journal(tmp_path / "out" / "journal.jsonl").entries if e["kind"] in ("ask", "step")]
    assert kinds[:2] == ["ask", "ask"]  # two SLURM jobs in flight at once
    jobs = [d for d in (tmp_path / "out" / "slurm").iterdir() if d.is_dir()]
    assert len(jobs) >= len(Journal(tmp_path / "out" / "journal.jsonl").of("step"))  # one job per step (+ closes)


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")
def test_sigkilled_slurm_session_cancels_its_jobs_and_resumes(tmp_path: Path, new_dataset: Path) -> None:
    from metagen.sweep.slurm_info import alive_jobs
    from metagen.tune.session import prepare, slurm_job_name

    cfg = tune_config(tmp_path, new_dataset, cluster="slurm", method="asha", budget="6ep", slurm_time_min=10)
    name = slurm_job_name(prepare(cfg))
    proc = _launch(cfg, tmp_path / "first.log")
    deadline = time.monotonic() + 300
    journal = tmp_path / "out" / "journal.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:  # kill after a told step, with a job queued/running
        if journal.is_file() and Journal(journal).of("step") and alive_jobs(name):
            break
        time.sleep(0.5)
    assert proc.poll() is None, (tmp_path / "first.log").read_text()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    second = _launch(cfg, tmp_path / "second.log")
    assert second.wait(timeout=600) == 0, (tmp_path / "second.log").read_text()
    log = (tmp_path / "second.log").read_text()
    assert "[tune] resumed:" in log and "[tune] done (budget)" in log
    assert "epochs of 0 pipelines told" not in log  # the killed launch had told a step
    assert not alive_jobs(name)
    runs, curves = stored(tmp_path / "store")
    assert curves.height == 6 and runs["n_epochs"].sum() == 6
    pairs = journal_epochs(tmp_path / "out")
    assert len(pairs) == len(set(pairs)) == 6
