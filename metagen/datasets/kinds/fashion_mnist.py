"""``fashion_mnist``: real Zalando Fashion-MNIST photos (Debian package ``dataset-fashion-mnist``)."""

from __future__ import annotations

import functools
import gzip
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from metagen.datasets.errors import SourceUnavailableError
from metagen.datasets.kinds.base import Generated, Kind, Tolerance, choose_classes, gray_to_rgb, resize

ENV_DIR = "METAGEN_FASHION_MNIST_DIR"
DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CLASS_NAMES = ("T-shirt or top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")  # fmt: skip
PER_CLASS = 7000  # 6000 train + 1000 t10k images of each class


def source_dir() -> Path:
    """``$METAGEN_FASHION_MNIST_DIR`` or the Debian package's folder."""
    return Path(os.environ.get(ENV_DIR, DEFAULT_DIR))


def unavailable() -> str | None:
    """Why the idx files cannot be read here, or None."""
    folder = source_dir()
    missing = [f for pair in FILES.values() for f in pair if not (folder / f).is_file()]
    if not missing:
        return None
    return (
        f"Fashion-MNIST files {missing} not found in {folder}. Install them with "
        f"`apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or point ${ENV_DIR} at a folder holding the "
        f"four *-ubyte.gz files from github.com/zalandoresearch/fashion-mnist."
    )


def _read_idx(path: Path, header: int) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise SourceUnavailableError(f"cannot read {path}: {e}; reinstall dataset-fashion-mnist") from e
    return np.frombuffer(data, dtype=np.uint8, offset=header)


@functools.cache
def load_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 70,000 images (70000, 28, 28) uint8 and labels (70000,) uint8, train then t10k."""
    reason = unavailable()
    if reason:
        raise SourceUnavailableError(reason)
    folder = source_dir()
    images, labels = [], []
    for img_file, lab_file in FILES.values():
        lab = _read_idx(folder / lab_file, 8)
        img = _read_idx(folder / img_file, 16)
        if img.size != lab.size * 28 * 28:
            raise SourceUnavailableError(f"{folder / img_file} does not match {lab_file}; reinstall the package")
        images.append(img.reshape(-1, 28, 28))
        labels.append(lab)
    return np.concatenate(images), np.concatenate(labels)


def generate(rng: np.random.Generator, n_classes: int, per_class: int, resolution: int) -> Generated:
    """``per_class`` distinct Fashion-MNIST images of each of ``n_classes`` random classes, upsampled (bicubic)."""
    images, labels = load_arrays()
    classes = choose_classes(rng, len(CLASS_NAMES), n_classes)
    picks = [rng.choice(np.flatnonzero(labels == c), size=per_class, replace=False) for c in classes]

    def frames() -> Iterator[np.ndarray]:
        for idx in picks:
            for i in idx:
                yield gray_to_rgb(resize(images[i], resolution, Image.Resampling.BICUBIC))

    return Generated(
        class_names=tuple(CLASS_NAMES[c] for c in classes),
        images=frames(),
        info={
            "source_indices": "train (0-59999) then t10k (60000-69999) of the idx files",
            "source_dir": str(source_dir()),
        },
    )


KIND = Kind(
    name="fashion_mnist",
    domain="Fashion products",
    description="real Zalando Fashion-MNIST product photos (10 classes, 28 px grey, upsampled)",
    source="Fashion-MNIST (Xiao et al. 2017) via Debian package dataset-fashion-mnist",
    license="MIT (Expat), Zalando SE",
    max_classes=len(CLASS_NAMES),
    max_per_class=PER_CLASS,
    unavailable=unavailable,
    generate=generate,
    # garments are left-right symmetric classes; small crops cut the garment
    tolerates=Tolerance(hflip=True, min_crop_scale=0.35),
)
