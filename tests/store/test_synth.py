"""Synthetic stores: exact profile sizes, determinism, clearly marked synthetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from metagen.store import StoreReader
from metagen.store.inspect import store_info, validate_store
from metagen.store.synth import PROFILES, synthesize


def test_tiny_profile_sizes_and_marking(tmp_path: Path) -> None:
    synthesize(tmp_path / "s", "tiny", seed=1)
    info = store_info(tmp_path / "s")
    assert info["synthetic"] is True and "SYNTHETIC" in info["description"]
    for vp in PROFILES["tiny"]:
        v = info["versions"][vp.version]
        assert (v["n_datasets"], v["n_runs"], v["n_epochs"]) == (vp.n_datasets, vp.n_curves, vp.n_epochs)
    runs = StoreReader(tmp_path / "s").scan_runs().collect()
    assert runs["source"].unique().to_list() == ["synthetic"]
    assert set(runs["status"].unique()) <= {"ok", "timeout", "diverged"}
    assert validate_store(tmp_path / "s") == []


def test_same_seed_same_store(tmp_path: Path) -> None:
    synthesize(tmp_path / "a", "tiny", seed=5)
    synthesize(tmp_path / "b", "tiny", seed=5)
    synthesize(tmp_path / "c", "tiny", seed=6)
    arrays = [StoreReader(tmp_path / x).curve_arrays("BCT", "micro").values for x in "abc"]
    assert np.array_equal(arrays[0], arrays[1], equal_nan=True)
    assert not np.array_equal(arrays[0], arrays[2], equal_nan=True)


@pytest.mark.slow
def test_paper_profile_matches_the_paper_sizes(tmp_path: Path) -> None:
    synthesize(tmp_path / "p", "paper", seed=0)
    d = StoreReader(tmp_path / "p").datasets()
    sizes = d.group_by("dataset_version").agg(pl.len(), pl.col("n_runs").sum(), pl.col("n_epochs").sum())
    got = {r[0]: r[1:] for r in sizes.rows()}
    assert got == {"micro": (30, 8712, 371538), "mini": (30, 6731, 266384), "extended": (26, 4665, 105722)}
