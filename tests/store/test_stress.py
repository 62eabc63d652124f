"""Several processes write hundreds of runs at once while some are SIGKILLed and compaction runs.

Afterwards every completed run is readable with the right content, nothing is duplicated or lost,
and a relaunch finishes what the killed writers left.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from metagen.store import StoreReader, compact
from metagen.store.inspect import validate_store
from metagen.store.layout import temp_files
from tests.store.stress_worker import expected_run, run_ids

N_WORKERS, N_RUNS = 4, 150


def spawn(store: Path, worker: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "tests.store.stress_worker", str(store), str(worker), str(N_RUNS), str(log)]
    return subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[2])


def logged(log: Path) -> set[str]:
    return set(log.read_text().split()) if log.exists() else set()


@pytest.mark.slow
def test_concurrent_writers_with_kills(store: Path, tmp_path: Path) -> None:
    logs = [tmp_path / f"w{i}.log" for i in range(N_WORKERS)]
    procs = [spawn(store, i, logs[i]) for i in range(N_WORKERS)]
    deadline = time.time() + 60
    while min(len(logged(logs[i])) for i in (0, 1)) < 20 and time.time() < deadline:
        time.sleep(0.05)
    for i in (0, 1):  # killed mid-sweep, possibly mid-write
        procs[i].send_signal(signal.SIGKILL)
    compact(store)  # maintenance while the others keep writing
    for p in procs:
        p.wait(timeout=300)
    done_before_relaunch = set().union(*(logged(log) for log in logs))
    killed_total = sum(len(logged(logs[i])) for i in (0, 1))
    assert killed_total < 2 * N_RUNS, "the kills came too late to test anything"

    reader = StoreReader(store)
    stored = reader.scan_runs().collect()
    assert stored["run_id"].is_unique().all(), "a run is stored twice"
    assert done_before_relaunch <= set(stored["run_id"]), "a completed run was lost"
    assert [p for p in validate_store(store) if p.severity == "error"] == []

    for i in (0, 1):  # relaunch the killed writers: they finish without conflicts
        spawn(store, i, logs[i]).wait(timeout=300)
    compact(store, stale_temp_after_s=0.0)
    assert temp_files(store) == []
    reader = StoreReader(store)
    runs = reader.scan_runs().collect()
    curves = reader.scan_curves().collect()
    expected = set().union(*(run_ids(i, N_RUNS) for i in range(N_WORKERS)))
    assert set(runs["run_id"]) == expected and runs.height == len(expected)
    for rid in sorted(expected)[::7]:  # content equals what the writer meant to write
        run, curve = expected_run(rid)
        got = curves.filter(pl.col("run_id") == rid).sort("epoch")
        assert got["eval_top1"].to_list() == [pl.Series([c["eval_top1"]], dtype=pl.Float32)[0] for c in curve]
        assert runs.filter(pl.col("run_id") == rid)["lr"][0] == run["lr"]
    assert [p for p in validate_store(store) if p.severity == "error"] == []
