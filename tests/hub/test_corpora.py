"""The pretraining corpora: the glyph corpus's disjointness from the characters targets, and unions."""

from __future__ import annotations

import numpy as np
import pytest

from metagen.datasets.kinds.characters import ALPHABET, find_fonts
from metagen.hub.corpora import (
    CORPORA,
    GLYPH_CANDIDATES,
    REFERENCE_FONT,
    TARGET_IOU,
    TWIN_IOU,
    _iou,
    _shape_mask,
    glyph_classes,
    glyphs_corpus,
    synthetic_corpus,
    union,
)

needs_fonts = pytest.mark.skipif(
    not any(p.name == REFERENCE_FONT for p in find_fonts()), reason=f"{REFERENCE_FONT} is not installed"
)


@needs_fonts
def test_glyph_classes_are_disjoint_from_the_targets_in_class_and_shape():
    chars = glyph_classes()
    assert len(chars) >= 100 and len(set(chars)) == len(chars)
    assert not set(chars) & set(ALPHABET) and set(chars) <= set(GLYPH_CANDIDATES)
    ref = str(next(p for p in find_fonts() if p.name == REFERENCE_FONT))
    masks = {c: m for c in chars if (m := _shape_mask(ref, c)) is not None}
    targets = [m for t in ALPHABET if (m := _shape_mask(ref, t)) is not None]
    assert len(masks) == len(chars) and len(targets) == len(ALPHABET)
    assert all(_iou(masks[c], t) < TARGET_IOU for c in chars for t in targets)
    assert all(_iou(masks[a], masks[b]) < TWIN_IOU for i, a in enumerate(chars) for b in chars[i + 1 :])
    # The filters do bite: Armenian capital SEH is a Latin U, capital LIWN a Latin L, and Hebrew FINAL NUN
    # is the same bar as VAV.
    dropped = set(GLYPH_CANDIDATES) - set(chars)
    assert {"\u054d", "\u053c"} <= dropped and ("\u05d5" in dropped) != ("\u05df" in dropped)


@needs_fonts
def test_glyphs_corpus_renders_every_class_in_both_splits():
    c = glyphs_corpus(24, per_class_train=2, per_class_eval=1)
    n = len(glyph_classes())
    assert c.train_images.shape == (2 * n, 24, 24, 3) and c.eval_images.shape == (n, 24, 24, 3)
    assert np.array_equal(np.bincount(c.train_labels), np.full(n, 2)) and not c.hflip_ok
    assert c.class_names[0].startswith("U+") and len(c.class_names) == n
    again = glyphs_corpus(24, per_class_train=2, per_class_eval=1)
    assert np.array_equal(again.train_images, c.train_images)  # a pure function (resumed runs see the same data)
    assert not np.array_equal(c.train_images[::2], c.eval_images)  # independent streams


def test_union_offsets_labels_and_makes_rgb():
    a = synthetic_corpus(8, n_train=6, n_eval=3, seed=0)  # grey
    b = synthetic_corpus(8, n_train=4, n_eval=2, seed=1)
    rgb = np.repeat(b.train_images[..., None], 3, axis=3)
    b = type(b)(**{**b.__dict__, "train_images": rgb, "eval_images": np.repeat(b.eval_images[..., None], 3, 3),
                   "hflip_ok": False})  # fmt: skip
    u = union("ab", (a, b))
    assert u.train_images.shape == (10, 8, 8, 3) and u.eval_images.shape == (5, 8, 8, 3)
    assert np.array_equal(u.train_labels, np.concatenate([a.train_labels, b.train_labels + 4]))
    assert np.array_equal(u.train_images[0, ..., 1], a.train_images[0])
    assert u.class_names == a.class_names + b.class_names and not u.hflip_ok and u.tag == "ab"
    assert {"fmnist", "glyphs", "fmglyph", "synth"} <= set(CORPORA)
