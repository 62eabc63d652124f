"""The pixel baseline of the quality report: logistic regression on raw pixels, on the runner's split.

For each dataset of a store, its Meta-Album folder is found by name and checked against what the store's runs
recorded about it (classes, training images, resolution, content fingerprint); then a scikit-learn
``LogisticRegression`` is fitted on the flattened RGB pixels of the paper split's train part, raw (in [0, 1]) and
standardized, and the better validation score of the two is the baseline (the stricter bar): the same images the
finetuning runner trains on and evaluates its curves on (``MetaAlbumDataset.split()``). Needs scikit-learn (the
``datasets`` extra); imports neither torch nor timm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from metagen.store.errors import DatasetFolderError

if TYPE_CHECKING:
    from metagen.datasets import MetaAlbumDataset, Split

BASELINE_SEED = 0
"""``random_state`` of the logistic regression."""
MAX_ITER = 2000
"""Iterations of lbfgs."""
METHOD = (
    "scikit-learn LogisticRegression (lbfgs, C=1, max_iter 2000, random_state 0) on flattened RGB pixels at the "
    "store's resolution, the better of raw pixels in [0, 1] and pixels standardized with the train part's mean and "
    "std; fitted on the paper split's train part, scored (top-1) on its validation part, the split the finetuning "
    "curves report"
)
"""What the baseline is, for reports."""


@dataclass(frozen=True)
class DatasetFacts:
    """What a store's runs recorded about one dataset (``None``: not recorded)."""

    version: str
    dataset: str
    num_classes: int | None
    train_size: int | None
    resolution: int | None
    fingerprint: str | None = None


@dataclass(frozen=True)
class PixelBaseline:
    """The pixel baseline of one dataset folder.

    Attributes:
        path: the dataset folder.
        accuracy: validation top-1 of the logistic regression (a fraction).
        majority: share of the validation part's most frequent class (a fraction).
        num_classes, n_train, n_val, resolution: what it was computed on.
    """

    path: Path
    accuracy: float
    majority: float
    num_classes: int
    n_train: int
    n_val: int
    resolution: int


def find_datasets(dirs: Sequence[str | Path]) -> dict[str, Path]:
    """Dataset name -> folder for every Meta-Album dataset in ``dirs`` (each a dataset or a folder of datasets).

    Names are those the runner records: ``info.json``'s ``dataset_name``, else the folder's name.

    Raises:
        DatasetFolderError: a folder is missing, holds no dataset, or two folders hold datasets of the same name.
    """
    from metagen.datasets import DatasetError, load_dataset

    found: dict[str, Path] = {}
    for d in map(Path, dirs):
        if not d.is_dir():
            raise DatasetFolderError(f"dataset folder {d} does not exist; pass --datasets DIR with the dataset folders")
        candidates = [d] if (d / "labels.csv").is_file() else sorted(p for p in d.iterdir() if p.is_dir())
        candidates = [p for p in candidates if (p / "labels.csv").is_file() or (p / "info.json").is_file()]
        if not candidates:
            raise DatasetFolderError(
                f"{d} holds no Meta-Album dataset (no subfolder with labels.csv and info.json); pass the folder that "
                "holds the dataset folders, e.g. the OUT of `python -m metagen.datasets suite OUT`"
            )
        for p in candidates:
            try:
                name = load_dataset(p).name
            except DatasetError as e:
                raise DatasetFolderError(f"cannot read dataset folder {p}: {e}") from e
            if name in found:
                raise DatasetFolderError(
                    f"two dataset folders are named {name!r}: {found[name]} and {p}; pass folders with one dataset "
                    "of each name"
                )
            found[name] = p
    return found


def check_matches(ds: MetaAlbumDataset, split: Split, facts: DatasetFacts) -> None:
    """Raise :class:`DatasetFolderError` when a dataset folder is not the one the store's runs trained on.

    Compares the class count, the size of the train part, the resolution (the larger side of the first image) and
    the content fingerprint (``MetaAlbumDataset.fingerprint``) with what the runs recorded; values the runs did not
    record are not compared.
    """
    folder: dict[str, object] = {
        "num_classes": len(ds.classes),
        "train_size": len(split.train),
        "resolution": max(ds.image_size()),
    }
    stored: dict[str, object] = {
        "num_classes": facts.num_classes,
        "train_size": facts.train_size,
        "resolution": facts.resolution,
    }
    if facts.fingerprint is not None:
        stored["dataset_fingerprint"], folder["dataset_fingerprint"] = facts.fingerprint, ds.fingerprint()
    differ = [f"{k} {stored[k]} in the store but {folder[k]} in the folder" for k in folder
              if stored[k] is not None and stored[k] != folder[k]]  # fmt: skip
    if differ:
        raise DatasetFolderError(
            f"dataset folder {ds.root} does not match the store's runs of {facts.version}/{facts.dataset}: "
            f"{'; '.join(differ)}. Pass the folder the runs were trained on (regenerate it with the same spec and "
            "seed), or leave out --datasets"
        )


def pixel_features(ds: MetaAlbumDataset, indices: np.ndarray, resolution: int) -> np.ndarray:
    """(len(indices), resolution² x 3) float32 RGB pixels in [0, 1]; images of another size are resized (bilinear)."""
    from PIL import Image

    rows = []
    for i in indices.tolist():
        image = ds.open_image(i)
        if image.size != (resolution, resolution):
            image = image.resize((resolution, resolution), Image.Resampling.BILINEAR)
        rows.append(np.asarray(image, dtype=np.float32).reshape(-1) / 255.0)
    return np.stack(rows) if rows else np.zeros((0, resolution * resolution * 3), np.float32)


def logistic_accuracy(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, seed: int = BASELINE_SEED
) -> float:
    """Validation top-1 of a logistic regression on ``x_train``: the better of raw and standardized pixels
    (see :data:`METHOD`)."""
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler
    except ImportError as e:
        raise DatasetFolderError(
            "the pixel baseline needs scikit-learn: pip install 'metagen[datasets]' (or scikit-learn), or leave out "
            "--datasets"
        ) from e
    if len(np.unique(y_train)) < 2:
        raise DatasetFolderError("the pixel baseline needs training images of at least 2 classes")
    from threadpoolctl import threadpool_limits

    # One BLAS/OpenMP thread: these problems are small, and on a busy machine more threads are many times slower.
    with threadpool_limits(limits=1):
        scores = []
        for scaler in (None, StandardScaler().fit(x_train)):
            tr, va = (x_train, x_val) if scaler is None else (scaler.transform(x_train), scaler.transform(x_val))
            model = LogisticRegression(max_iter=MAX_ITER, random_state=seed).fit(tr, y_train)
            scores.append(float(np.mean(model.predict(va) == y_val)))
        return max(scores)


def pixel_baseline(path: str | Path, facts: DatasetFacts, seed: int = BASELINE_SEED) -> PixelBaseline:
    """The pixel baseline of one dataset folder, after checking it matches ``facts`` (see :func:`check_matches`)."""
    from metagen.datasets import DatasetError, load_dataset

    try:
        ds = load_dataset(path)
        split = ds.split()
        check_matches(ds, split, facts)
        resolution = facts.resolution or max(ds.image_size())
        x_train = pixel_features(ds, split.train, resolution)
        x_val = pixel_features(ds, split.val, resolution)
    except DatasetError as e:
        raise DatasetFolderError(f"dataset folder {path} ({facts.version}/{facts.dataset}): {e}") from e
    y_train, y_val = ds.labels[split.train], ds.labels[split.val]
    accuracy = logistic_accuracy(x_train, y_train, x_val, y_val, seed)
    majority = float(np.bincount(y_val).max() / len(y_val))
    return PixelBaseline(Path(path), accuracy, majority, len(ds.classes), len(y_train), len(y_val), resolution)


def pixel_baselines(
    facts: Sequence[DatasetFacts], dirs: Sequence[str | Path], seed: int = BASELINE_SEED
) -> dict[tuple[str, str], PixelBaseline]:
    """(version, dataset) -> pixel baseline for every dataset of ``facts``, folders matched by name in ``dirs``.

    Raises:
        DatasetFolderError: a dataset has no folder in ``dirs``, or its folder does not match the runs.
    """
    folders = find_datasets(dirs)
    missing = sorted({f.dataset for f in facts} - set(folders))
    if missing:
        raise DatasetFolderError(
            f"no dataset folder for {', '.join(missing)} in {', '.join(map(str, dirs))} (found: "
            f"{', '.join(sorted(folders)) or 'none'}); pass the folders the store's runs were trained on, or leave "
            "out --datasets"
        )
    return {(f.version, f.dataset): pixel_baseline(folders[f.dataset], f, seed) for f in facts}
