"""make_suite and DEFAULT_SUITE."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from metagen.datasets import (
    DEFAULT_SUITE,
    KIND_SPECS,
    GeneratorArgumentError,
    OutputExistsError,
    SourceUnavailableError,
    SuiteEntry,
    load_dataset,
    make_suite,
)
from metagen.datasets.make import _check_split, check_arguments
from metagen.datasets.suite import entry_seed

TINY = [("shapes", "S1", 3, 5, 16), ("digits", "D1", 2, 5, 16)]


def test_default_suite_is_valid() -> None:
    assert 10 <= len(DEFAULT_SUITE) <= 14
    assert len({e.name for e in DEFAULT_SUITE}) == len(DEFAULT_SUITE)
    assert len({e.kind for e in DEFAULT_SUITE}) >= 5
    for e in DEFAULT_SUITE:
        check_arguments(e.kind, e.n_classes, e.per_class, e.resolution, entry_seed(0, e.name))
        assert 5 <= e.n_classes <= 20 and 20 <= e.per_class <= 60 and 32 <= e.resolution <= 64
        n = e.n_classes * e.per_class
        # the paper split leaves every class training images for any file order tried
        for s in range(3):
            _check_split(np.repeat(np.arange(e.n_classes), e.per_class), np.random.default_rng(s).permutation(n), 1)


def test_make_suite(tmp_path: Path) -> None:
    paths = make_suite(tmp_path / "suite", TINY, seed=5)
    assert [p.name for p in paths] == ["S1", "D1"]
    assert [len(load_dataset(p)) for p in paths] == [15, 10]
    manifest = json.loads((tmp_path / "suite" / "suite.json").read_text())
    assert manifest["seed"] == 5 and [d["name"] for d in manifest["datasets"]] == ["S1", "D1"]
    assert manifest["datasets"][0]["seed"] == entry_seed(5, "S1")
    assert json.loads((paths[0] / "info.json").read_text())["seed"] == entry_seed(5, "S1")


def test_entry_seeds_depend_on_name_not_position(tmp_path: Path) -> None:
    a = make_suite(tmp_path / "a", TINY, seed=1)
    b = make_suite(tmp_path / "b", [TINY[1], ("shapes", "S2", 3, 5, 16), TINY[0]], seed=1)
    for name in ("S1", "D1"):
        pa, pb = next(p for p in a if p.name == name), next(p for p in b if p.name == name)
        assert (pa / "labels.csv").read_bytes() == (pb / "labels.csv").read_bytes()
        assert [f.read_bytes() for f in sorted((pa / "images").iterdir())] == [
            f.read_bytes() for f in sorted((pb / "images").iterdir())
        ]
    assert entry_seed(1, "S1") != entry_seed(2, "S1")


def test_suite_errors_before_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(GeneratorArgumentError, match="unique"):
        make_suite(tmp_path / "s", [TINY[0], TINY[0]])
    with pytest.raises(GeneratorArgumentError, match="2 to 23 classes"):
        make_suite(tmp_path / "s", [TINY[1], ("shapes", "S9", 99, 5, 16)])
    with pytest.raises(GeneratorArgumentError, match="empty"):
        make_suite(tmp_path / "s", [])
    with pytest.raises(GeneratorArgumentError, match="plain folder name"):
        make_suite(tmp_path / "s", [("shapes", "../x", 3, 5, 16)])
    monkeypatch.setenv("METAGEN_FASHION_MNIST_DIR", str(tmp_path / "none"))
    spec = [*TINY, ("fashion_mnist", "F1", 3, 5, 16)]
    with pytest.raises(SourceUnavailableError, match=r"F1.*skip_unavailable"):
        make_suite(tmp_path / "s", spec)
    assert not (tmp_path / "s").exists()
    with pytest.warns(UserWarning, match="skipping F1"):
        paths = make_suite(tmp_path / "s", spec, skip_unavailable=True)
    assert [p.name for p in paths] == ["S1", "D1"]
    with pytest.raises(OutputExistsError, match="force=True"):
        make_suite(tmp_path / "s", TINY)
    assert len(make_suite(tmp_path / "s", TINY, force=True)) == 2


def test_suite_entry_tuple() -> None:
    assert SuiteEntry(*TINY[0]).kind == "shapes"
    assert all(e.kind in KIND_SPECS for e in DEFAULT_SUITE)


@pytest.mark.slow
def test_default_suite_end_to_end(tmp_path: Path) -> None:
    paths = make_suite(tmp_path, seed=0, skip_unavailable=True)
    for p in paths:
        ds = load_dataset(p)
        entry = next(e for e in DEFAULT_SUITE if e.name == p.name)
        assert ds.meta_features()["num_classes"] == entry.n_classes
        assert len(ds) == entry.n_classes * entry.per_class
