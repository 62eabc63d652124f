"""What a generator kind is: a named source of class-labelled RGB images, plus shared image helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Generated:
    """Output of a kind's generator.

    Attributes:
        class_names: (n_classes,) category names, in class-index order.
        images: yields ``n_classes * per_class`` (resolution, resolution, 3) uint8 arrays, class-major
            (all images of class 0, then class 1, ...).
        info: extra provenance for info.json (e.g. the fonts or source images used).
    """

    class_names: tuple[str, ...]
    images: Iterator[np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Tolerance:
    """What a dataset's images tolerate in training augmentation, written to info.json as ``tolerates``.

    A dataset without the entry (e.g. real Meta-Album data) tolerates timm's ImageNet recipe, so the
    defaults are that recipe's values.

    Attributes:
        hflip: whether a horizontally mirrored image keeps its class (not for characters and digits).
        min_crop_scale: the smallest crop area fraction that keeps the class recognisable.
        color_jitter: the strongest ColorJitter that keeps the class.
    """

    hflip: bool = True
    min_crop_scale: float = 0.08
    color_jitter: float = 0.4

    def to_json(self) -> dict[str, Any]:
        """The ``tolerates`` entry of info.json."""
        return {"hflip": self.hflip, "min_crop_scale": self.min_crop_scale, "color_jitter": self.color_jitter}

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> Tolerance:
        """The tolerance declared in an info.json (defaults for what it leaves out); ValueError if malformed."""
        entry = info.get("tolerates") or {}
        if not isinstance(entry, dict) or set(entry) - {"hflip", "min_crop_scale", "color_jitter"}:
            raise ValueError(f"'tolerates' must be an object with hflip, min_crop_scale, color_jitter; got {entry!r}")
        t = cls(
            hflip=bool(entry.get("hflip", True)),
            min_crop_scale=float(entry.get("min_crop_scale", 0.08)),
            color_jitter=float(entry.get("color_jitter", 0.4)),
        )
        if not (0 < t.min_crop_scale <= 1 and t.color_jitter >= 0):
            raise ValueError(f"'tolerates' needs 0 < min_crop_scale <= 1 and color_jitter >= 0; got {entry!r}")
        return t


GenerateFn = Callable[[np.random.Generator, int, int, int], Generated]
"""``generate(rng, n_classes, per_class, resolution) -> Generated``."""


@dataclass(frozen=True)
class Kind:
    """A dataset generator.

    Attributes:
        name: the KIND argument of the CLI.
        domain: Meta-Album-like domain written to info.json.
        description: one line for ``python -m metagen.datasets list``.
        source: where the raw data or the procedure comes from.
        license: license of the raw data.
        max_classes: most classes the source offers.
        max_per_class: most images per class (``None``: unlimited, generated).
        unavailable: returns ``None`` if the source is installed, else why not and how to install it.
        generate: the generator (see :data:`GenerateFn`).
        tolerates: what its images tolerate in training augmentation (info.json ``tolerates``).
    """

    name: str
    domain: str
    description: str
    source: str
    license: str
    max_classes: int
    max_per_class: int | None
    unavailable: Callable[[], str | None]
    generate: GenerateFn
    tolerates: Tolerance = field(default_factory=Tolerance)


def always_available() -> str | None:
    """For procedural kinds that need nothing beyond numpy and PIL."""
    return None


def choose_classes(rng: np.random.Generator, n_pool: int, n_classes: int) -> np.ndarray:
    """(n_classes,) int64 distinct class indices out of ``n_pool``, ascending."""
    return np.sort(rng.choice(n_pool, size=n_classes, replace=False)).astype(np.int64)


def gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    """(H, W) uint8 -> (H, W, 3) uint8 with equal channels."""
    return np.repeat(gray[:, :, None], 3, axis=2)


def resize(img: np.ndarray, resolution: int, resample: Image.Resampling = Image.Resampling.BICUBIC) -> np.ndarray:
    """(H, W) or (H, W, C) uint8 -> (resolution, resolution[, C]) uint8 via PIL."""
    return np.asarray(Image.fromarray(img).resize((resolution, resolution), resample))


def add_noise(rng: np.random.Generator, img: np.ndarray, sigma: float) -> np.ndarray:
    """``img`` (any shape, uint8 or float in 0..255) plus Gaussian noise of std ``sigma``, clipped to uint8."""
    out = img.astype(np.float32) + rng.normal(0.0, sigma, size=img.shape).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
