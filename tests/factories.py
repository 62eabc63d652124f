"""Factories of valid runs and curves for tests (small, deterministic, built in-process)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


def make_run(run_id: str = "r1", dataset: str = "PNU", version: str = "micro", **overrides: Any) -> dict[str, Any]:
    """A valid run row of the v1 space (Adam, no conditionals active except opt_betas)."""
    run: dict[str, Any] = {
        "run_id": run_id, "dataset": dataset, "dataset_version": version, "model": "dla46x_c.in1k",
        "pct_to_freeze": 0.2, "layer_decay": None, "linear_probing": False, "stoch_norm": False,
        "sp_reg": 0.0, "delta_reg": 0.0, "bss_reg": 0.0, "cotuning_reg": 0.0, "mixup": 0.0, "mixup_prob": 0.0,
        "cutmix": 0.0, "drop": 0.1, "smoothing": 0.0, "clip_grad": None, "opt": "adam", "opt_betas": "0.9 0.999",
        "lr": 1e-3, "warmup_lr": 0.0, "warmup_epochs": 0, "weight_decay": 1e-4, "batch_size": 32, "amp": False,
        "seed": 0, "max_epochs": 5, "status": "ok", "source": "metagen", "train_size": 480, "num_classes": 20,
        "resolution": 128, "channels": 3,
    }  # fmt: skip
    run.update(overrides)
    return run


def make_curve(n: int = 5, start: float = 0.1, step: float = 0.1, cost: float = 2.0) -> list[dict[str, Any]]:
    """``n`` epochs of a rising accuracy curve with constant per-epoch cost (train 80%, eval 20%)."""
    return [
        {
            "epoch": e,
            "train_loss": 1.0 / e,
            "eval_loss": 1.1 / e,
            "eval_top1": min(1.0, start + step * (e - 1)),
            "eval_top5": min(1.0, start + step * (e - 1) + 0.05),
            "train_time": cost * 0.8,
            "eval_time": cost * 0.2,
            "lr": 1e-3,
        }
        for e in range(1, n + 1)
    ]


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make the folder tree ``path`` unwritable for this process, also as root, and restore it afterwards.

    Not root: ``chmod a-w`` on every folder. Root (which ignores modes): the immutable attribute
    (``chattr -R +i``); the test is skipped where the file system or the container does not allow it.
    """
    dirs = [path, *(p for p in path.rglob("*") if p.is_dir())]
    if os.geteuid() != 0:
        modes = {d: d.stat().st_mode for d in dirs}
        for d in dirs:
            d.chmod(0o555)
        try:
            yield
        finally:
            for d, mode in modes.items():
                d.chmod(mode)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "-R", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root, and chattr +i (the only way to make a folder unwritable for root) is unavailable")
    try:
        yield
    finally:
        subprocess.run([chattr, "-R", "-i", str(path)], check=True, capture_output=True)
