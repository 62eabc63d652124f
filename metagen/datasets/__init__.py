"""Meta-Album image datasets: reading them with the paper's split and meta-features, and generating them offline.

Imports numpy, PIL and the standard library only (no torch, no timm); generator sources are imported lazily.
"""

from __future__ import annotations

from metagen.datasets.errors import (
    DatasetError,
    DatasetNotFoundError,
    GeneratorArgumentError,
    InfoError,
    LabelsError,
    LayoutError,
    MissingImageError,
    OutputExistsError,
    SourceUnavailableError,
    SplitError,
    UnlabeledImageError,
    UnreadableImageError,
)
from metagen.datasets.kinds import KIND_SPECS, KINDS
from metagen.datasets.make import make_dataset
from metagen.datasets.metaalbum import MetaAlbumDataset, load_dataset
from metagen.datasets.split import PAPER_SPLIT_SEED, Split, split_indices
from metagen.datasets.suite import DEFAULT_SUITE, SuiteEntry, make_suite

__all__ = [
    "DEFAULT_SUITE",
    "KINDS",
    "KIND_SPECS",
    "PAPER_SPLIT_SEED",
    "DatasetError",
    "DatasetNotFoundError",
    "GeneratorArgumentError",
    "InfoError",
    "LabelsError",
    "LayoutError",
    "MetaAlbumDataset",
    "MissingImageError",
    "OutputExistsError",
    "SourceUnavailableError",
    "Split",
    "SplitError",
    "SuiteEntry",
    "UnlabeledImageError",
    "UnreadableImageError",
    "load_dataset",
    "make_dataset",
    "make_suite",
    "split_indices",
]
