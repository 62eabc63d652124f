"""Source corpora for pretraining the local hub's small models (``python -m metagen.hub pretrain --corpus TAG``).

* ``fmnist``: Fashion-MNIST's train split (60,000 images, 10 classes; Debian package ``dataset-fashion-mnist``)
  upsampled (bicubic) to the target resolution, grey replicated to RGB; its t10k split is the evaluation split.
* ``glyphs``: printed glyphs of scripts and symbols that the ``characters`` target kind does not use (Armenian,
  Georgian, Hebrew, punctuation, currency, math, arrows, card suits), rendered from the system's fonts with that
  kind's renderer (random font, size, offset, rotation, colours, gradient, noise). The class list is chosen so
  that source and targets stay disjoint in classes *and* in shapes: a glyph is dropped when its bounding-box
  mask in DejaVu Sans overlaps any target character's by IoU >= :data:`TARGET_IOU` (e.g. Armenian Ս is a
  Latin U), and when it overlaps an already kept glyph by IoU >= :data:`TWIN_IOU` (Hebrew ו / ן are one bar).
* ``fmglyph``: the union of the two (one head over both class lists): clothing photographs and printed strokes.
* ``synth``: a tiny learnable corpus for tests.

Every corpus is a pure function of its arguments (fixed seeds), so a resumed pretraining sees the same data.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Corpus:
    """Source images for pretraining.

    Attributes:
        tag: short name used in card ids (``fmnist`` -> ``<arch>.fmnist64``).
        name, description, license: what the card says about the data.
        train_split, eval_split: split names.
        train_images, eval_images: (N, H, W) grey or (N, H, W, 3) RGB uint8 at the training resolution.
        train_labels, eval_labels: (N,) int labels in ``0..len(class_names)-1``.
        class_names: the classes in label order.
        hflip_ok: whether a horizontally mirrored image keeps its class (not for glyphs).
    """

    tag: str
    name: str
    description: str
    license: str
    train_split: str
    eval_split: str
    train_images: np.ndarray
    train_labels: np.ndarray
    eval_images: np.ndarray
    eval_labels: np.ndarray
    class_names: tuple[str, ...]
    hflip_ok: bool = True

    @property
    def resolution(self) -> int:
        """Side length of the images."""
        return int(self.train_images.shape[1])


def fashion_mnist_corpus(resolution: int) -> Corpus:
    """Fashion-MNIST train (60,000) and t10k (10,000) images, upsampled (bicubic) to ``resolution``.

    Raises:
        SourceUnavailableError: the Debian package's files are missing (the message says how to install).
    """
    from metagen.datasets.kinds import fashion_mnist as fm
    from metagen.datasets.kinds.base import resize

    images, labels = fm.load_arrays()
    n_train = 60000
    big = np.stack([resize(img, resolution) for img in images])
    return Corpus(
        tag="fmnist",
        name="Fashion-MNIST (Xiao et al. 2017)",
        description=f"{fm.KIND.description}; Debian package dataset-fashion-mnist",
        license=fm.KIND.license,
        train_split="train",
        eval_split="t10k",
        train_images=big[:n_train],
        train_labels=labels[:n_train].astype(np.int64),
        eval_images=big[n_train:],
        eval_labels=labels[n_train:].astype(np.int64),
        class_names=tuple(fm.CLASS_NAMES),
    )


def synthetic_corpus(resolution: int, n_train: int = 256, n_eval: int = 64, seed: int = 0) -> Corpus:
    """A tiny learnable corpus for tests: 4 classes, a bright horizontal band in one of 4 rows, over noise.

    The classes survive horizontal flips and small shifts (the pretraining augmentation).
    """
    rng = np.random.default_rng(seed)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 4, size=n)
        images = rng.integers(0, 60, size=(n, resolution, resolution), dtype=np.uint8)
        band = resolution // 4
        for i, c in enumerate(labels):
            images[i, int(c) * band : (int(c) + 1) * band] += 150
        return images, labels.astype(np.int64)

    tr, tl = make(n_train)
    ev, el = make(n_eval)
    return Corpus(
        tag="synth",
        name="synthetic bands",
        description="bright horizontal band in one of 4 rows over uniform noise (tests)",
        license="generated",
        train_split="train",
        eval_split="eval",
        train_images=tr,
        train_labels=tl,
        eval_images=ev,
        eval_labels=el,
        class_names=("band 1", "band 2", "band 3", "band 4"),
    )


GLYPH_CANDIDATES = (
    "".join(chr(c) for c in range(0x531, 0x557))  # Armenian capitals
    + "".join(chr(c) for c in range(0x561, 0x587))  # Armenian small letters
    + "".join(chr(c) for c in range(0x10D0, 0x10F1))  # Georgian Mkhedruli
    + "".join(chr(c) for c in range(0x5D0, 0x5EB))  # Hebrew letters
    + "&@#%?!§¶+=<>*$€£¥©®∑∫√∞≈≠≤≥←→↑↓♠♣♥♦★☺♪☼✓✗"
)
"""Glyphs considered for the ``glyphs`` corpus, before the disjointness filter (:func:`glyph_classes`)."""
TARGET_IOU = 0.75
"""A candidate glyph whose shape overlaps a target character's by at least this IoU is dropped."""
TWIN_IOU = 0.85
"""A candidate glyph whose shape overlaps an already kept glyph's by at least this IoU is dropped."""
REFERENCE_FONT = "DejaVuSans.ttf"
GLYPH_SEED = 20261201


def _shape_mask(font_path: str, char: str) -> np.ndarray | None:
    """(32, 32) bool mask of ``char``'s ink, cropped to its bounding box and rescaled (size-invariant)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(font_path, 48)
    canvas = Image.new("L", (96, 96), 0)
    ImageDraw.Draw(canvas).text((48, 48), char, fill=255, font=font, anchor="mm")
    ink = np.asarray(canvas) > 127
    ys, xs = np.nonzero(ink)
    if len(ys) == 0:
        return None
    box = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return np.asarray(Image.fromarray(box.astype(np.uint8) * 255).resize((32, 32))) > 127


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(int((a | b).sum()), 1))


@functools.cache
def glyph_classes() -> tuple[str, ...]:
    """The ``glyphs`` corpus's classes: the candidates that at least 2 installed fonts render and that pass the
    shape filters against the target alphabet (:data:`TARGET_IOU`) and each other (:data:`TWIN_IOU`), in
    candidate order.

    Raises:
        SourceUnavailableError: no fonts are installed, or the reference font (DejaVu Sans) is missing.
    """
    from metagen.datasets.errors import SourceUnavailableError
    from metagen.datasets.kinds.characters import ALPHABET, find_fonts, fonts_for, unavailable

    reason = unavailable()
    if reason:
        raise SourceUnavailableError(reason)
    ref = [p for p in find_fonts() if p.name == REFERENCE_FONT]
    if not ref:
        raise SourceUnavailableError(
            f"the glyph corpus measures shapes in {REFERENCE_FONT}, which is not installed; install fonts-dejavu-core"
        )
    targets = [m for m in (_shape_mask(str(ref[0]), c) for c in ALPHABET) if m is not None]
    kept: list[tuple[str, np.ndarray]] = []
    for char in GLYPH_CANDIDATES:
        mask = _shape_mask(str(ref[0]), char)
        if mask is None or len(fonts_for(char)) < 2:
            continue
        if any(_iou(mask, t) >= TARGET_IOU for t in targets) or any(_iou(mask, k) >= TWIN_IOU for _, k in kept):
            continue
        kept.append((char, mask))
    return tuple(c for c, _ in kept)


def _glyph_name(char: str) -> str:
    return f"U+{ord(char):04X} {unicodedata.name(char, '?')}"


def glyphs_corpus(resolution: int, per_class_train: int = 300, per_class_eval: int = 50) -> Corpus:
    """Renders of every :func:`glyph_classes` glyph: ``per_class_train`` train and ``per_class_eval`` eval
    images each, (resolution, resolution, 3) uint8, from two independent seeded streams.

    Raises:
        SourceUnavailableError: no usable fonts (the message says what to install).
    """
    from metagen.datasets.kinds.characters import fonts_for, render

    chars = glyph_classes()

    def make(per_class: int, stream: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([GLYPH_SEED, stream, resolution])
        images = np.stack([render(rng, c, fonts_for(c), resolution) for c in chars for _ in range(per_class)])
        return images, np.repeat(np.arange(len(chars), dtype=np.int64), per_class)

    train, train_labels = make(per_class_train, 0)
    evals, eval_labels = make(per_class_eval, 1)
    return Corpus(
        tag="glyphs",
        name="rendered glyphs (Armenian, Georgian, Hebrew, symbols)",
        description=(
            f"{len(chars)} glyph classes disjoint from the characters targets in class and shape (shape IoU < "
            f"{TARGET_IOU} to every target character in {REFERENCE_FONT}), rendered from the system fonts with "
            f"the characters kind's renderer; {per_class_train} train / {per_class_eval} eval renders per class"
        ),
        license="generated; fonts: DejaVu (Bitstream Vera license)",
        train_split="train",
        eval_split="eval",
        train_images=train,
        train_labels=train_labels,
        eval_images=evals,
        eval_labels=eval_labels,
        class_names=tuple(_glyph_name(c) for c in chars),
        hflip_ok=False,
    )


def _rgb(images: np.ndarray) -> np.ndarray:
    return images if images.ndim == 4 else np.repeat(images[..., None], 3, axis=3)


def union(tag: str, parts: tuple[Corpus, ...]) -> Corpus:
    """One corpus over several: images (RGB) and class lists concatenated, labels offset per part."""
    offsets = np.cumsum([0] + [len(p.class_names) for p in parts[:-1]])
    return Corpus(
        tag=tag,
        name=" + ".join(p.name for p in parts),
        description="; ".join(f"{p.name}: {p.description}" for p in parts),
        license="; ".join(f"{p.name}: {p.license}" for p in parts),
        train_split=" + ".join(p.train_split for p in parts),
        eval_split=" + ".join(p.eval_split for p in parts),
        train_images=np.concatenate([_rgb(p.train_images) for p in parts]),
        train_labels=np.concatenate([p.train_labels + o for p, o in zip(parts, offsets, strict=True)]),
        eval_images=np.concatenate([_rgb(p.eval_images) for p in parts]),
        eval_labels=np.concatenate([p.eval_labels + o for p, o in zip(parts, offsets, strict=True)]),
        class_names=tuple(n for p in parts for n in p.class_names),
        hflip_ok=all(p.hflip_ok for p in parts),
    )


def fmglyph_corpus(resolution: int) -> Corpus:
    """Fashion-MNIST (:func:`fashion_mnist_corpus`) and the glyphs (:func:`glyphs_corpus`) under one head."""
    return union("fmglyph", (fashion_mnist_corpus(resolution), glyphs_corpus(resolution)))


CORPORA: dict[str, Callable[[int], Corpus]] = {
    "fmnist": fashion_mnist_corpus,
    "glyphs": glyphs_corpus,
    "fmglyph": fmglyph_corpus,
    "synth": synthetic_corpus,
}
"""Corpus readers by tag (``--corpus``), each taking the resolution."""
