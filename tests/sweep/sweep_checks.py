"""Assertions and waits shared by the local and the SLURM end-to-end tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from metagen.store import StoreReader
from metagen.store.inspect import validate_store
from metagen.store.layout import temp_files

CURVE_VALUES = ("train_loss", "eval_loss", "eval_top1", "eval_top5", "lr", "head_grad_norm", "backbone_grad_norm")
"""Curve columns that a deterministic CPU run reproduces exactly (times and memory differ)."""


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.2) -> None:
    """Poll ``predicate`` until it is true; AssertionError naming ``what`` after ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def stored_runs(store: Path) -> pl.DataFrame:
    """The store's runs table."""
    return StoreReader(store).scan_runs().collect()


def curve_of(store: Path, run_id: str) -> pl.DataFrame:
    """One run's curve (values reproduced by deterministic runs only)."""
    curves = StoreReader(store).scan_curves().filter(pl.col("run_id") == run_id).collect()
    return curves.sort("epoch").select("epoch", *CURVE_VALUES)


def assert_clean_store(store: Path, run_ids: set[str], epochs: int) -> None:
    """Every run once, complete (status ok, all epochs), the store valid, no temp files left."""
    runs = stored_runs(store)
    assert sorted(runs["run_id"].to_list()) == sorted(run_ids), "each planned run exactly once"
    assert set(runs["status"].to_list()) == {"ok"}, runs.select("run_id", "status", "status_message")
    assert set(runs["n_epochs"].to_list()) == {epochs}
    assert validate_store(store) == []
    assert temp_files(store) == []


def job_pids(folder: Path) -> list[int]:
    """Python processes running a job of the submitit folder ``folder`` (``python -m submitit.core._submit``)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        is_python = Path(args[0].decode(errors="replace")).name.startswith("python")  # not srun's command line
        if is_python and b"submitit.core._submit" in args and any(a.startswith(str(folder).encode()) for a in args):
            pids.append(int(proc.name))
    return pids


def has_checkpoint(checkpoint_dir: Path, run_id: str) -> bool:
    """Whether the run has an epoch checkpoint on disk."""
    d = checkpoint_dir / run_id
    return d.is_dir() and any(not p.name.startswith(".") for p in d.iterdir())
