"""Shared test setup: offline hub, a fresh store per test, a real local SLURM cluster.

The ``slurm_cluster`` fixture (session-scoped) uses the SLURM controller that answers. Only when asked
(``METAGEN_START_SLURM=1``, as root with apt) does it start ``scripts/slurm/start.sh`` itself and stop
what it started at the end; otherwise it skips, so that a plain ``pytest`` never installs or starts
SLURM and MariaDB.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("HF_HUB_OFFLINE", "1")

EXTRA_DIRS: dict[str, tuple[str, ...]] = {
    "finetune": ("torch", "timm"),
    "hub": ("torch", "timm"),
    "surrogates": ("torch", "gpytorch"),
    "sweep": ("torch", "timm", "submitit"),
}
"""Test folders that need an optional extra (pyproject ``metagen`` / ``surrogates``), by the packages it installs.
In the core install (no torch) these folders are not collected; every other test module imports torch-based
code only after ``pytest.importorskip`` (checked by ``tests/test_architecture.py``)."""


def installed(module: str) -> bool:
    """Whether a top-level package can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


collect_ignore = [d for d, needs in EXTRA_DIRS.items() if not all(installed(m) for m in needs)]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """An empty measured store in a temp dir."""
    from metagen.store import StoreMetadata, create_store

    root = tmp_path / "store"
    create_store(root, StoreMetadata(name="test-store", description="made by a test"))
    return root


def _controller_up() -> bool:
    if not shutil.which("scontrol"):
        return False
    try:
        return subprocess.run(["scontrol", "ping"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


START_SLURM_ENV = "METAGEN_START_SLURM"
"""Set to ``1`` to let ``slurm_cluster`` start a local cluster (installs SLURM + MariaDB with apt, as root)."""


def slurm_start_refusal() -> str | None:
    """Why ``slurm_cluster`` must not start a cluster itself (``None``: it may), given no controller answers."""
    if os.environ.get(START_SLURM_ENV) != "1":
        return (
            "no SLURM controller answers; start one (as root: bash scripts/slurm/start.sh) or set "
            f"{START_SLURM_ENV}=1 to let the tests start it"
        )
    if os.geteuid() != 0:
        return "no SLURM controller answers and starting one (scripts/slurm/start.sh) needs root"
    if not shutil.which("apt-get"):
        return "no SLURM controller answers and scripts/slurm/start.sh needs a Debian/Ubuntu system (apt-get)"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[None]:
    """A running single-node SLURM cluster with accounting (started here only on request, then stopped here)."""
    if _controller_up() and shutil.which("sacct"):
        yield
        return
    refusal = slurm_start_refusal()
    if refusal is not None:
        pytest.skip(refusal)
    start = subprocess.run(["bash", str(ROOT / "scripts/slurm/start.sh")], capture_output=True, text=True)
    if start.returncode != 0:
        pytest.fail(f"scripts/slurm/start.sh failed:\n{start.stdout}\n{start.stderr}")
    try:
        yield
    finally:
        subprocess.run(["bash", str(ROOT / "scripts/slurm/stop.sh")], capture_output=True, text=True)
