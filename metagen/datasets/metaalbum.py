"""A Meta-Album dataset on disk: its files, labels, paper split and meta-features (interface A)."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from metagen.datasets.errors import (
    DatasetNotFoundError,
    InfoError,
    LabelsError,
    LayoutError,
    MissingImageError,
    SplitError,
    UnlabeledImageError,
    UnreadableImageError,
)
from metagen.datasets.kinds.base import Tolerance
from metagen.datasets.layout import IMAGE_SUFFIXES, image_folder, label_columns, list_images, read_info, read_labels
from metagen.datasets.split import PAPER_SPLIT_SEED, Split, split_indices

CHANNELS = 3
"""Images are always opened as RGB (as Quick-Tune and Meta-Album do), so the model sees 3 channels."""

_SHOWN = 5  # names listed in an error message before "... and N more"


def _some(names: list[str]) -> str:
    more = f" ... and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


@dataclass(frozen=True, eq=False)
class MetaAlbumDataset:
    """An image-classification dataset in the Meta-Album layout, loaded by :func:`load_dataset`.

    Attributes:
        name: ``info.json["dataset_name"]`` or the folder name.
        root: the dataset folder.
        classes: sorted category names; ``labels`` index into this.
        files: (n,) image paths in the fixed order (sorted file names).
        labels: (n,) int64 class index of each file.
        info: ``info.json`` contents.
    """

    name: str
    root: Path
    classes: tuple[str, ...]
    files: tuple[Path, ...]
    labels: np.ndarray
    info: dict[str, Any] = field(repr=False)

    def __len__(self) -> int:
        return len(self.files)

    def class_counts(self) -> np.ndarray:
        """(num_classes,) int64 number of images of each class."""
        return np.bincount(self.labels, minlength=len(self.classes)).astype(np.int64)

    def split(self, seed: int = PAPER_SPLIT_SEED, *, min_train_per_class: int = 1) -> Split:
        """The paper's 60/20/20 split (see :func:`split_indices`), checked to be usable.

        Raises:
            SplitError: val, test or train is empty, or a class has fewer than ``min_train_per_class`` train images.
        """
        split = split_indices(len(self), seed)
        empty = [k for k, v in split.sizes().items() if v == 0]
        if empty:
            raise SplitError(
                f"dataset {self.name!r} ({self.root}) has {len(self)} images: the 60/20/20 split leaves {empty} "
                f"empty. Add images (at least 5; Meta-Album Micro has 40 per class)."
            )
        per_class = np.bincount(self.labels[split.train], minlength=len(self.classes))
        short = [f"{self.classes[c]!r} ({per_class[c]} of {n})" for c, n in enumerate(self.class_counts())
                 if per_class[c] < min_train_per_class]  # fmt: skip
        if short:
            raise SplitError(
                f"dataset {self.name!r} ({self.root}): with split seed {seed} these classes get fewer than "
                f"{min_train_per_class} training image(s) (train of total): {_some(short)}. The split is not "
                f"stratified; add images to those classes or remove them from labels.csv and images/."
            )
        return split

    def image_size(self) -> tuple[int, int]:
        """(width, height) of the first image in the fixed order, read from its header only."""
        path = self.files[0]
        try:
            with Image.open(path) as im:
                return im.size
        except (OSError, UnidentifiedImageError) as e:
            raise UnreadableImageError(f"cannot read image {path}: {e}; replace or delete it") from e

    def meta_features(self, split: Split | None = None) -> dict[str, int]:
        """Quick-Tune's four dataset descriptors (quicktune-method.md §3.4).

        ``train_size`` = images in ``split.train`` (default: the paper split), ``num_classes`` = classes in
        labels.csv, ``resolution`` = the larger side of the first image (header only, not decoded),
        ``channels`` = 3 (images are opened as RGB).
        """
        split = self.split() if split is None else split
        return {
            "train_size": len(split.train),
            "num_classes": len(self.classes),
            "resolution": max(self.image_size()),
            "channels": CHANNELS,
        }

    def tolerates(self) -> Tolerance:
        """What the images tolerate in training augmentation: info.json ``tolerates`` (default: anything timm's
        ImageNet recipe does, as for real Meta-Album data).

        Raises:
            InfoError: the entry is malformed.
        """
        try:
            return Tolerance.from_info(self.info)
        except ValueError as e:
            raise InfoError(f"{self.root / 'info.json'}: {e}") from e

    def fingerprint(self) -> str:
        """Content identity: sha256 (first 16 hex) over every (file name, class name, image bytes) in the fixed order.

        Two folders with the same name but other labels or images get different fingerprints; a copy of a
        folder gets the same one. Reads every image file once (milliseconds for Micro-sized datasets).
        """
        h = hashlib.sha256()
        for path, label in zip(self.files, self.labels.tolist(), strict=True):
            data = path.read_bytes()
            h.update(f"{path.name}\0{self.classes[label]}\0{len(data)}\0".encode())
            h.update(data)
        return h.hexdigest()[:16]

    def open_image(self, i: int) -> Image.Image:
        """Image ``i`` of the fixed order, decoded and converted to RGB."""
        path = self.files[i]
        try:
            with Image.open(path) as im:
                im.load()
                return im.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise UnreadableImageError(
                f"cannot decode image {path}: {e}. Replace the file, or delete it and its row in labels.csv."
            ) from e

    def iter_images(self) -> Iterator[tuple[Image.Image, int]]:
        """(RGB image, label) for every file in the fixed order."""
        for i in range(len(self)):
            yield self.open_image(i), int(self.labels[i])

    def verify(self, progress: bool = False) -> None:
        """Decode every image; raises :class:`UnreadableImageError` naming the first bad file."""
        from tqdm import tqdm

        for i in tqdm(range(len(self)), desc=f"verify {self.name}", unit="img", disable=not progress):
            self.open_image(i)


def load_dataset(path: str | Path, *, verify: bool = False) -> MetaAlbumDataset:
    """Read a Meta-Album dataset folder (``labels.csv``, ``info.json``, ``images/``).

    Cheap checks always run (layout, columns, every listed image exists and is non-empty, every image is listed);
    ``verify=True`` also decodes every image.

    Raises:
        DatasetError: a subclass naming the file or class at fault and the fix.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise DatasetNotFoundError(
            f"dataset folder {root} does not exist. Pass a Meta-Album dataset folder (labels.csv, info.json, "
            f"images/) or create one with `python -m metagen.datasets make KIND {root}`."
        )
    if not root.is_dir():
        raise LayoutError(f"{root} is a file; a Meta-Album dataset is a folder with labels.csv, info.json, images/")
    if not (root / "labels.csv").exists() and not (root / "info.json").exists():
        inner = sorted(p.name for p in root.iterdir() if (p / "labels.csv").is_file())
        if inner:
            raise LayoutError(
                f"{root} is a folder of datasets, not a dataset (no labels.csv or info.json); pass one of its "
                f"subfolders: {_some(inner)}"
            )
    info = read_info(root)
    image_column, category_column = label_columns(info, root / "info.json")
    labels = read_labels(root, image_column, category_column)
    bad_ext = [n for n in labels if Path(n).suffix.lower() not in IMAGE_SUFFIXES]
    if bad_ext:
        raise LabelsError(
            f"{root / 'labels.csv'} lists files that are not PNG/JPEG images ({'/'.join(IMAGE_SUFFIXES)}): "
            f"{_some(bad_ext)}. Convert them or remove their rows."
        )
    folder = image_folder(root, labels)
    names = list_images(folder)
    on_disk = set(names)
    missing = [n for n in labels if n not in on_disk]
    if missing:
        raise MissingImageError(
            f"{len(missing)} image(s) listed in {root / 'labels.csv'} are not in {folder}: {_some(missing)}. "
            f"Restore them or delete their rows from labels.csv."
        )
    unlabeled = [n for n in names if n not in labels]
    if unlabeled:
        raise UnlabeledImageError(
            f"{len(unlabeled)} image(s) in {folder} have no row in {root / 'labels.csv'}: {_some(unlabeled)}. "
            f"Add their rows ({image_column},{category_column}) or delete the files."
        )
    files = tuple(folder / n for n in names)
    empty = [p.name for p in files if p.stat().st_size == 0]
    if empty:
        raise UnreadableImageError(f"{len(empty)} empty image file(s) in {folder}: {_some(empty)}; replace or delete")
    classes = tuple(sorted(set(labels.values())))
    if len(classes) < 2:
        raise LabelsError(
            f"{root / 'labels.csv'} has {len(classes)} class(es) ({_some(list(classes))}); a classification dataset "
            "needs at least 2 (every accuracy would be 1.0). Add the other classes' images and rows."
        )
    index = {c: i for i, c in enumerate(classes)}
    label_arr = np.fromiter((index[labels[n]] for n in names), dtype=np.int64, count=len(names))
    total = info.get("total_categories")
    if isinstance(total, int) and total != len(classes):
        warnings.warn(
            f"{root / 'info.json'} says total_categories={total} but labels.csv has {len(classes)} classes; "
            f"using labels.csv",
            stacklevel=2,
        )
    name = info.get("dataset_name")
    ds = MetaAlbumDataset(
        name=name.strip() if isinstance(name, str) and name.strip() else root.name,
        root=root,
        classes=classes,
        files=files,
        labels=label_arr,
        info=info,
    )
    if verify:
        ds.verify()
    return ds
