"""Generated datasets: every kind, determinism, argument and output errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from metagen.datasets import (
    KIND_SPECS,
    KINDS,
    GeneratorArgumentError,
    OutputExistsError,
    SourceUnavailableError,
    SplitError,
    load_dataset,
    make_dataset,
)
from metagen.datasets.kinds import Generated, characters


def _skip_if_unavailable(kind: str) -> None:
    reason = KIND_SPECS[kind].unavailable()
    if reason:
        pytest.skip(f"{kind} source not installed here: {reason}")


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


def test_kinds_listed() -> None:
    assert set(KINDS) >= {"fashion_mnist", "digits", "textures", "characters", "shapes"}
    for spec in KIND_SPECS.values():
        assert spec.description and spec.source and spec.license and spec.max_classes >= 5


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_tiny(kind: str, tmp_path: Path) -> None:
    _skip_if_unavailable(kind)
    out = make_dataset(kind, tmp_path / "ds", n_classes=3, per_class=4, resolution=24, seed=3)
    ds = load_dataset(out, verify=True)
    assert len(ds) == 12 and len(ds.classes) == 3
    assert ds.class_counts().tolist() == [4, 4, 4]
    assert ds.meta_features() == {"train_size": 8, "num_classes": 3, "resolution": 24, "channels": 3}
    for i in range(len(ds)):
        img = ds.open_image(i)
        assert img.size == (24, 24) and img.mode == "RGB"
    pixels = np.stack([np.asarray(ds.open_image(i)) for i in range(len(ds))])
    assert pixels.std() > 5  # not blank
    assert not all(np.array_equal(pixels[0], p) for p in pixels[1:])
    info = json.loads((out / "info.json").read_text())
    for key in ("dataset_name", "domain", "total_categories", "images_per_category", "resolution", "source",
                "license", "seed", "generator_version", "image_column_name", "category_column_name"):  # fmt: skip
        assert key in info, key
    assert info["dataset_name"] == "ds" and info["kind"] == kind and info["seed"] == 3
    assert info["total_categories"] == 3 and info["images_per_category"] == 4 and info["resolution"] == 24
    assert sorted(info["categories"]) == list(ds.classes)


@pytest.mark.parametrize("kind", KINDS)
def test_deterministic(kind: str, tmp_path: Path) -> None:
    _skip_if_unavailable(kind)
    args: dict[str, Any] = {"n_classes": 3, "per_class": 4, "resolution": 16}
    a = _digest(make_dataset(kind, tmp_path / "a", seed=11, name="x", **args))
    b = _digest(make_dataset(kind, tmp_path / "b", seed=11, name="x", **args))
    c = _digest(make_dataset(kind, tmp_path / "c", seed=12, name="x", **args))
    assert a == b and len(a) == 14  # 12 images + labels.csv + info.json
    assert a != c


def test_file_order_does_not_group_classes(tmp_path: Path) -> None:
    ds = load_dataset(make_dataset("shapes", tmp_path / "s", n_classes=4, per_class=10, resolution=16, seed=0))
    assert not np.array_equal(ds.labels, np.sort(ds.labels))


def test_name_and_resolution(tmp_path: Path) -> None:
    out = make_dataset("shapes", tmp_path / "s", n_classes=2, per_class=5, resolution=40, seed=0, name="SHP")
    ds = load_dataset(out)
    assert ds.name == "SHP" and ds.meta_features()["resolution"] == 40


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "mnist"}, "unknown dataset kind 'mnist'"),
        ({"n_classes": 1}, "2 to 23 classes"),
        ({"n_classes": 24}, "2 to 23 classes"),
        ({"kind": "digits", "per_class": 175}, "at most 174 images per class"),
        ({"per_class": 0}, "per_class=0"),
        ({"resolution": 4}, "resolution must be 8 to 1024"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"n_classes": 2.5}, "n_classes must be an integer"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    args = {"kind": "shapes", "n_classes": 3, "per_class": 4, "resolution": 16, "seed": 0, **kwargs}
    kind = args.pop("kind")
    with pytest.raises(GeneratorArgumentError, match=message) as e:
        make_dataset(kind, tmp_path / "ds", **args)
    assert isinstance(e.value, ValueError)
    assert not (tmp_path / "ds").exists()


def test_too_few_images_for_the_split(tmp_path: Path) -> None:
    with pytest.raises(SplitError, match=r"Use more images per class"):
        make_dataset("shapes", tmp_path / "ds", n_classes=2, per_class=2, resolution=16, seed=0)
    assert not (tmp_path / "ds").exists()


def test_refuses_non_empty_output_unless_forced(tmp_path: Path) -> None:
    out = make_dataset("shapes", tmp_path / "ds", n_classes=2, per_class=5, resolution=16, seed=0)
    before = _digest(out)
    with pytest.raises(OutputExistsError, match=r"not empty.*--force"):
        make_dataset("shapes", out, n_classes=3, per_class=5, resolution=16, seed=1)
    assert _digest(out) == before
    make_dataset("shapes", out, n_classes=3, per_class=5, resolution=16, seed=1, force=True)
    assert len(load_dataset(out).classes) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary folder left


def test_empty_output_folder_is_fine(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    make_dataset("shapes", tmp_path / "ds", n_classes=2, per_class=5, resolution=16, seed=0)
    assert len(load_dataset(tmp_path / "ds")) == 10


def test_force_never_deletes_a_folder_that_is_not_a_dataset(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("precious")
    with pytest.raises(OutputExistsError, match="does not look like a dataset"):
        make_dataset("shapes", tmp_path / "home", n_classes=2, per_class=5, resolution=16, seed=0, force=True)
    assert (tmp_path / "home" / "thesis.tex").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputExistsError, match="is a file"):
        make_dataset("shapes", tmp_path / "file", n_classes=2, per_class=5, resolution=16, seed=0)


def test_failed_generation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(rng, n_classes, per_class, resolution):
        def frames():
            yield np.zeros((resolution, resolution, 3), np.uint8)
            raise OSError("disk on fire")

        return Generated(("a", "b"), frames())

    monkeypatch.setitem(KIND_SPECS, "shapes", dataclasses.replace(KIND_SPECS["shapes"], generate=broken))
    with pytest.raises(OSError, match="disk on fire"):
        make_dataset("shapes", tmp_path / "ds", n_classes=2, per_class=5, resolution=16, seed=0)
    assert list(tmp_path.iterdir()) == []


def test_fashion_mnist_missing_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METAGEN_FASHION_MNIST_DIR", str(tmp_path / "empty"))
    with pytest.raises(SourceUnavailableError, match="apt-get install dataset-fashion-mnist"):
        make_dataset("fashion_mnist", tmp_path / "ds", n_classes=3, per_class=5, resolution=16, seed=0)
    assert not (tmp_path / "ds").exists()


def test_characters_without_fonts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METAGEN_FONT_DIRS", str(tmp_path / "nofonts"))
    characters.find_fonts.cache_clear()
    try:
        with pytest.raises(SourceUnavailableError, match="fonts-dejavu-core"):
            make_dataset("characters", tmp_path / "ds", n_classes=3, per_class=5, resolution=16, seed=0)
    finally:
        characters.find_fonts.cache_clear()
        characters.fonts_for.cache_clear()
