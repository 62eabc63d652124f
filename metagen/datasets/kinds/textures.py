"""``textures``: grey patches cut at random places, scales and orientations from scikit-image's sample images."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
from PIL import Image

from metagen.datasets.errors import SourceUnavailableError
from metagen.datasets.kinds.base import Generated, Kind, Tolerance, add_noise, choose_classes, gray_to_rgb, resize

# (skimage.data function, license note). The first three are real material textures; the rest are regions of
# photographs and micrographs whose local texture identifies them. All are bundled in the scikit-image wheel.
SOURCES = (
    ("brick", "CC0 (cc0textures.com Bricks25)"),
    ("grass", "CC0 (DeviantArt linolafett Grass-01)"),
    ("gravel", "CC0 (cc0textures.com Gravel04)"),
    ("moon", "scikit-image sample data, no license note"),
    ("hubble_deep_field", "public domain (NASA)"),
    ("immunohistochemistry", "no known copyright restrictions (CMMI)"),
    ("cell", "CC0"),
    ("coins", "no known copyright restrictions (Brooklyn Museum)"),
    ("camera", "CC0 (Lav Varshney)"),
    ("coffee", "CC0 (Rachel Michetti)"),
    ("chelsea", "CC0 (Stefan van der Walt)"),
    ("astronaut", "public domain (NASA)"),
    ("rocket", "public domain (SpaceX)"),
    ("page", "scikit-image sample data, no license note"),
    ("text", "public domain (Wikipedia Corner.png)"),
)
PATCH_FRACTION = (0.12, 0.3)  # patch side as a fraction of the source's shorter side


def unavailable() -> str | None:
    """Why the scikit-image sample images cannot be loaded here, or None."""
    try:
        import skimage.data  # noqa: F401
    except ImportError:
        return "scikit-image is not installed: `pip install scikit-image` (its wheel bundles the sample images)"
    return None


@functools.cache
def load_source(name: str) -> np.ndarray:
    """Sample image ``name`` as (H, W) uint8 grey."""
    reason = unavailable()
    if reason:
        raise SourceUnavailableError(reason)
    import skimage.data

    try:
        img = np.asarray(getattr(skimage.data, name)())
    except Exception as e:  # a missing optional file raises various errors
        raise SourceUnavailableError(f"scikit-image sample image {name!r} is unavailable: {e}") from e
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    return np.asarray(Image.fromarray(img.astype(np.uint8)).convert("L"))


def _patch(rng: np.random.Generator, src: np.ndarray, resolution: int) -> np.ndarray:
    h, w = src.shape
    side = round(rng.uniform(*PATCH_FRACTION) * min(h, w))
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    patch = np.rot90(src[top : top + side, left : left + side], k=int(rng.integers(4)))
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    patch = resize(np.ascontiguousarray(patch), resolution, Image.Resampling.BICUBIC).astype(np.float32)
    patch = (patch - patch.mean()) * rng.uniform(0.8, 1.2) + patch.mean() + rng.uniform(-20, 20)  # contrast, bright
    return gray_to_rgb(add_noise(rng, patch, sigma=float(rng.uniform(0, 6))))


def generate(rng: np.random.Generator, n_classes: int, per_class: int, resolution: int) -> Generated:
    """``per_class`` random patches (rotated by k*90 deg, maybe flipped, contrast/brightness jitter, noise) of each
    of ``n_classes`` random source images."""
    classes = choose_classes(rng, len(SOURCES), n_classes)
    names = [SOURCES[c][0] for c in classes]
    sources = [load_source(n) for n in names]

    def frames() -> Iterator[np.ndarray]:
        for src in sources:
            for _ in range(per_class):
                yield _patch(rng, src, resolution)

    return Generated(
        class_names=tuple(names),
        images=frames(),
        info={"source_images": {n: lic for n, lic in SOURCES if n in names}},
    )


KIND = Kind(
    name="textures",
    domain="Textures / image regions",
    description="grey patches of scikit-image sample images (brick, grass, gravel, moon, ...; up to 15 classes)",
    source="scikit-image skimage.data sample images (bundled in the wheel)",
    license="per image (info.json source_images): CC0, public domain or no known restrictions; moon, page: no note",
    max_classes=len(SOURCES),
    max_per_class=None,
    unavailable=unavailable,
    generate=generate,
    # texture identity survives mirroring and moderate crops
    tolerates=Tolerance(hflip=True, min_crop_scale=0.25),
)
