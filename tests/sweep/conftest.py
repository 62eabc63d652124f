"""Fixtures of the sweep tests: tiny datasets and tiny sweep configs (``slurm_cluster``: tests/conftest.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from metagen.sweep.config import HubConfig, LocalClusterConfig, SlurmClusterConfig, SweepConfig

SMALLEST_MODEL = "dla46x_c"
"""The hub's smallest model (1.07 M parameters)."""


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A suite folder with two tiny datasets (3 classes x 12 images of 32 px shapes)."""
    from metagen.datasets import make_dataset

    root = tmp_path_factory.mktemp("sweep-data") / "suite"
    for i, name in enumerate(("shapes_a", "shapes_b")):
        make_dataset("shapes", root / name, n_classes=3, per_class=12, resolution=32, seed=i)
    return root


def tiny_config(
    tmp_path: Path, data: Path, cluster: LocalClusterConfig | SlurmClusterConfig | None = None, **overrides: Any
) -> SweepConfig:
    """A sweep of 2 datasets x 3 pipelines of the smallest model, 2 epochs at 32 px on one CPU thread."""
    cfg = SweepConfig(
        name=tmp_path.name[-40:],  # its own job name per test
        store=str(tmp_path / "store"),
        datasets=[str(data)],
        version="micro",
        pipelines_per_dataset=3,
        seed=0,
        hub=HubConfig(models=[SMALLEST_MODEL]),
        epochs=2,
        pretrained="none",
        img_size=32,
        device="cpu",
        deterministic=True,
        num_threads=1,
        cluster=cluster if cluster is not None else LocalClusterConfig(),
    )
    return replace(cfg, **overrides)


def slurm_test_cluster(**overrides: Any) -> SlurmClusterConfig:
    """CPU-only jobs that fit the local test cluster (2 CPUs, no GRES)."""
    c = SlurmClusterConfig(gpus_per_node=0, cpus_per_task=1, mem_gb=1.0, runs_per_job=3, signal_delay_s=30)
    return replace(c, **overrides)
