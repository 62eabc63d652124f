"""``digits``: real UCI handwritten digits shipped with scikit-learn (``load_digits``)."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
from PIL import Image

from metagen.datasets.errors import SourceUnavailableError
from metagen.datasets.kinds.base import Generated, Kind, Tolerance, choose_classes, gray_to_rgb, resize

MIN_PER_CLASS = 174  # the rarest digit (8) has 174 of the 1797 images


def unavailable() -> str | None:
    """Why scikit-learn's digits cannot be loaded here, or None."""
    try:
        import sklearn.datasets  # noqa: F401
    except ImportError:
        return "scikit-learn is not installed: `pip install scikit-learn` (it ships the digits data)"
    return None


@functools.cache
def load_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as (1797, 8, 8) uint8 in 0..255 and labels (1797,) int64."""
    reason = unavailable()
    if reason:
        raise SourceUnavailableError(reason)
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)  # 4-bit counts 0..16 -> 0..255
    return images, d.target.astype(np.int64)


def generate(rng: np.random.Generator, n_classes: int, per_class: int, resolution: int) -> Generated:
    """``per_class`` distinct scans of each of ``n_classes`` random digits, upsampled (bicubic) from 8x8."""
    images, labels = load_arrays()
    classes = choose_classes(rng, 10, n_classes)
    picks = [rng.choice(np.flatnonzero(labels == c), size=per_class, replace=False) for c in classes]

    def frames() -> Iterator[np.ndarray]:
        for idx in picks:
            for i in idx:
                yield gray_to_rgb(resize(images[i], resolution, Image.Resampling.BICUBIC))

    return Generated(class_names=tuple(str(c) for c in classes), images=frames())


KIND = Kind(
    name="digits",
    domain="OCR (handwritten)",
    description="real handwritten digits from scikit-learn's load_digits (10 classes, 8 px grey, upsampled)",
    source="UCI Optical Recognition of Handwritten Digits, via scikit-learn sklearn.datasets.load_digits",
    license="CC BY 4.0 (UCI ML Repository); scikit-learn BSD-3-Clause",
    max_classes=10,
    max_per_class=MIN_PER_CLASS,
    unavailable=unavailable,
    generate=generate,
    # a mirrored digit is not a digit; a crop under half the image cuts strokes
    tolerates=Tolerance(hflip=False, min_crop_scale=0.5),
)
