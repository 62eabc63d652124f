"""Images of a Meta-Album split as tensors: timm transforms, the search space's augmentations, and
loaders whose randomness is a pure function of (seed, epoch).

Reproducibility: the order of an epoch and the seed of every sample's augmentation come from
``np.random.default_rng([seed, epoch, ...])``. timm's and torchvision's transforms draw from
Python's ``random`` and torch's default CPU generator, which cannot be handed a generator; each
sample's transform therefore runs with both seeded from its own seed and restored afterwards. So
an epoch's batches do not depend on worker count, on earlier epochs or on a resume.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from metagen._timm import import_timm
from metagen.store.schema import IMAGENET_RECIPE

Transform = Callable[[Any], torch.Tensor]


@contextmanager
def seeded_global_rngs(seed: int) -> Iterator[None]:
    """Run a block with Python's ``random`` and torch's default CPU generator seeded; restore both after."""
    py_state = random.getstate()
    torch_state = torch.random.default_generator.get_state()
    random.seed(seed)
    torch.random.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        torch.random.default_generator.set_state(torch_state)


class SplitImages(Dataset):
    """Images ``indices`` of a dataset, transformed; items are keyed ``(position, sample_seed)``.

    Args:
        dataset: a ``MetaAlbumDataset`` (``open_image(i)``, ``labels``).
        indices: (k,) int64 indices of the split into the dataset's files.
        transform: PIL image -> (3, H, W) float tensor.
    """

    def __init__(self, dataset: Any, indices: np.ndarray, transform: Transform):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = np.asarray(dataset.labels, dtype=np.int64)[self.indices]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        pos, seed = key if isinstance(key, tuple) else (key, None)
        image = self.dataset.open_image(int(self.indices[pos]))
        if seed is None:
            x = self.transform(image)
        else:
            with seeded_global_rngs(seed):
                x = self.transform(image)
        return x, int(self.labels[pos])


class EpochBatches(Sampler[list[tuple[int, int]]]):
    """Shuffled batches of ``(position, sample_seed)`` keys, a pure function of ``(seed, epoch)``.

    Call :meth:`set_epoch` before iterating. The last incomplete batch is dropped (``drop_last``, as
    the reference; MixUp needs even batches), so ``batch_size`` must not exceed ``n``.
    """

    def __init__(self, n: int, batch_size: int, seed: int):
        if batch_size > n:
            raise ValueError(f"batch size {batch_size} exceeds the {n} training images")
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (0-based) whose batches the next iteration yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // self.batch_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        rng = np.random.default_rng([self.seed, self.epoch, 0])
        order = rng.permutation(self.n)
        seeds = rng.integers(0, 2**31 - 1, size=self.n)
        for b in range(len(self)):
            sl = slice(b * self.batch_size, (b + 1) * self.batch_size)
            yield [(int(i), int(s)) for i, s in zip(order[sl], seeds[sl], strict=True)]


def train_transform(
    data_config: Mapping[str, Any], hps: Mapping[str, Any], recipe: Mapping[str, float] | None = None
) -> Transform:
    """The base train recipe + the space's augmentation.

    ``recipe``: ``{crop_scale_min, hflip, color_jitter}`` for RandomResizedCrop(scale=(crop_scale_min, 1)),
    the flip probability and ColorJitter; ``None`` = timm's ImageNet recipe (0.08, 0.5, 0.4), the reference's.

    ``data_augmentation``: trivial_augment -> torchvision TrivialAugmentWide; random_augment ->
    torchvision RandAugment(ra_num_ops, ra_magnitude, 31 bins); auto_augment -> timm AutoAugment with
    policy ``auto_augment`` (v0 | original; None = none, as the reference). The torchvision ops are
    inserted just before the tensor conversion, as the reference did.
    """
    timm = import_timm()
    from torchvision import transforms as T

    aug = hps.get("data_augmentation")
    aa_policy = hps.get("auto_augment") if aug == "auto_augment" else None
    r = dict(IMAGENET_RECIPE if recipe is None else recipe)
    tf = timm.data.create_transform(
        input_size=data_config["input_size"],
        is_training=True,
        scale=(float(r["crop_scale_min"]), 1.0),
        ratio=(3 / 4, 4 / 3),
        hflip=float(r["hflip"]),
        color_jitter=float(r["color_jitter"]) or None,
        auto_augment=aa_policy,
        interpolation="random",
        mean=data_config["mean"],
        std=data_config["std"],
    )
    _posterize_zero_bits_as_black(tf)
    extra = None
    if aug == "trivial_augment":
        extra = T.TrivialAugmentWide()
    elif aug == "random_augment":
        extra = T.RandAugment(num_ops=int(hps["ra_num_ops"]), magnitude=int(hps["ra_magnitude"]), num_magnitude_bins=31)
    if extra is not None:
        names = [type(t).__name__ for t in tf.transforms]
        at = next(i for i, n in enumerate(names) if n in ("MaybeToTensor", "ToTensor", "PILToTensor"))
        tf.transforms.insert(at, extra)
    return tf


def _posterize_zero_bits_as_black(tf: Any) -> None:
    """Keep timm's AutoAugment posterize working under Pillow >= 13, which rejects 0 bits.

    The v0 policy can ask for 0 bits; older Pillow (the reference's) returned an all-black image
    then, which is what the replaced op does (see docs/finetune-deviations.md).
    """
    from PIL import Image

    for t in getattr(tf, "transforms", []):
        for sub in getattr(t, "policy", []):
            for op in sub:
                if getattr(op, "name", "") in ("Posterize", "PosterizeIncreasing", "PosterizeOriginal"):
                    original = op.aug_fn

                    def safe(img: Any, bits: int, *args: Any, _f: Any = original, **kwargs: Any) -> Any:
                        return Image.new(img.mode, img.size) if bits <= 0 else _f(img, bits, *args, **kwargs)

                    op.aug_fn = safe


def eval_transform(data_config: Mapping[str, Any]) -> Transform:
    """Resize + centre crop (the model's crop_pct) + normalisation."""
    timm = import_timm()
    return timm.data.create_transform(
        input_size=data_config["input_size"],
        is_training=False,
        interpolation=data_config["interpolation"],
        mean=data_config["mean"],
        std=data_config["std"],
        crop_pct=data_config["crop_pct"],
        crop_mode=data_config.get("crop_mode", "center"),
    )


def train_loader(images: SplitImages, batches: EpochBatches, num_workers: int, pin: bool) -> DataLoader:
    """Loader over ``batches`` (call ``batches.set_epoch`` before each iteration)."""
    return DataLoader(
        images,
        batch_sampler=batches,
        num_workers=num_workers,
        pin_memory=pin,
        generator=torch.Generator().manual_seed(0),  # keeps the loader off torch's global generator
        persistent_workers=num_workers > 0,
    )


def eval_loader(images: SplitImages, batch_size: int, num_workers: int, pin: bool) -> DataLoader:
    """Loader over all images in order (no augmentation randomness)."""
    return DataLoader(
        images,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin,
        generator=torch.Generator().manual_seed(0),
        persistent_workers=num_workers > 0,
    )
