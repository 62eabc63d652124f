"""Transforms of the search space and loaders whose randomness is a function of (seed, epoch)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torchvision.transforms import Compose

from metagen.datasets import load_dataset
from metagen.finetune.data import EpochBatches, SplitImages, eval_transform, seeded_global_rngs, train_transform

CFG = {
    "input_size": (3, 32, 32),
    "mean": (0.5, 0.5, 0.5),
    "std": (0.5, 0.5, 0.5),
    "interpolation": "bicubic",
    "crop_pct": 0.9,
}


def names(tf) -> list[str]:
    return [type(t).__name__ for t in tf.transforms]


def test_augmentations_are_inserted_as_the_reference_did():
    plain = names(train_transform(CFG, {"data_augmentation": None}))
    assert plain[0] == "RandomResizedCropAndInterpolation" and "ColorJitter" in plain
    trivial = names(train_transform(CFG, {"data_augmentation": "trivial_augment"}))
    assert trivial.index("TrivialAugmentWide") == trivial.index("MaybeToTensor") - 1
    ra = train_transform(CFG, {"data_augmentation": "random_augment", "ra_num_ops": 3, "ra_magnitude": 17})
    assert isinstance(ra, Compose)
    op = next(t for t in ra.transforms if type(t).__name__ == "RandAugment")
    assert (op.num_ops, op.magnitude, op.num_magnitude_bins) == (3, 17, 31)
    for policy in ("v0", "original"):
        aa = train_transform(CFG, {"data_augmentation": "auto_augment", "auto_augment": policy})
        assert "AutoAugment" in names(aa)
    none_policy = train_transform(CFG, {"data_augmentation": "auto_augment", "auto_augment": None})
    assert "AutoAugment" not in names(none_policy)  # the reference applied nothing for policy None
    assert names(eval_transform(CFG))[-1] == "Normalize"


def test_batches_are_a_function_of_seed_and_epoch():
    b = EpochBatches(24, 8, seed=1)
    b.set_epoch(0)
    e0 = list(b)
    b.set_epoch(1)
    e1 = list(b)
    b.set_epoch(0)
    assert list(b) == e0 and e0 != e1 and len(e0) == 3
    assert sorted(i for batch in e0 for i, _ in batch) == list(range(24))
    with pytest.raises(ValueError, match="exceeds"):
        EpochBatches(6, 8, seed=0)


def test_sample_transforms_are_seeded_and_leave_global_rngs_alone(tiny_dataset):
    ds = load_dataset(tiny_dataset)
    images = SplitImages(ds, np.arange(4), train_transform(CFG, {"data_augmentation": "trivial_augment"}))
    random.seed(123)
    torch.manual_seed(123)
    py, tr = random.getstate(), torch.get_rng_state()
    a, b, c = images[(0, 7)][0], images[(0, 7)][0], images[(0, 8)][0]
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert random.getstate() == py and torch.equal(torch.get_rng_state(), tr)
    with seeded_global_rngs(5):
        x = random.random()
    with seeded_global_rngs(5):
        assert random.random() == x


def test_autoaugment_posterize_zero_bits_gives_black_image_not_an_error() -> None:
    """Pillow >= 13 rejects posterize(0 bits), which timm's v0 policy can ask for; the reference got black."""
    from PIL import Image

    from metagen.finetune.data import train_transform

    dc = {"input_size": (3, 16, 16), "mean": (0.5,) * 3, "std": (0.5,) * 3}
    tf = train_transform(dc, {"data_augmentation": "auto_augment", "auto_augment": "v0"})
    assert isinstance(tf, Compose)
    ops = [op for t in tf.transforms for sub in getattr(t, "policy", []) for op in sub if "Posterize" in op.name]
    assert ops, "the v0 policy has posterize ops"
    img = Image.new("RGB", (16, 16), (200, 120, 40))
    assert ops[0].aug_fn(img, 0).getextrema() == ((0, 0), (0, 0), (0, 0))
    assert ops[0].aug_fn(img, 4).getpixel((0, 0)) == (192, 112, 32)
