"""Fixtures of the tuning tests: a tiny offline dataset made in-process and settings that train fast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from metagen.tune.config import TuneConfig

ROOT = Path(__file__).resolve().parents[2]
META_STORE = ROOT / "stores" / "offline10-64px"


@pytest.fixture(scope="session")
def new_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 classes x 16 shapes at 32 px, seed 11: not a dataset of the bundled store."""
    from metagen.datasets import make_dataset

    return make_dataset("shapes", tmp_path_factory.mktemp("data") / "SHT", n_classes=4, per_class=16,
                        resolution=32, seed=11)  # fmt: skip


def tune_config(tmp_path: Path, data: Path, **kw: Any) -> TuneConfig:
    """A session over the bundled store with few candidates, short curves and a tiny meta-training."""
    base: dict[str, Any] = {
        "dataset": str(data), "store": str(tmp_path / "store"), "meta_store": str(META_STORE), "budget": "3ep",
        "method": "random_search", "workers": 2, "candidates": 6, "epochs": 3, "out": str(tmp_path / "out"),
        "cache_dir": str(tmp_path / "cache"), "meta_iterations": 20, "progress_s": 5.0, "hub_dir": str(ROOT / "hub"),
    }  # fmt: skip
    return TuneConfig(**{**base, **kw})
