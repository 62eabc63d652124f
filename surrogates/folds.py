"""The paper's dataset-level 5-fold scheme for meta-training (reference §4.1, ``SPLITS``).

Datasets of a version are shuffled with ``default_rng(seed)`` (42 in the reference) and fold ``k``
holds every dataset whose shuffled index is ``k`` mod 5. Split ``k`` meta-trains on folds
``k, k+1, k+2``, validates (checkpoint selection) on ``k+4`` and tests on ``k+3`` (mod 5), so every
dataset is a test dataset exactly once and test datasets are never seen in meta-training.
Imports neither torch nor timm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    """One meta-training split: disjoint train / validation / test datasets."""

    index: int
    train: tuple[str, ...]
    valid: tuple[str, ...]
    test: tuple[str, ...]


def paper_splits(datasets: Sequence[str], n_folds: int = 5, seed: int = 42) -> list[Split]:
    """The ``n_folds`` splits of ``datasets`` (sorted first, so the input order does not matter)."""
    names = sorted(set(datasets))
    if n_folds < 3:
        raise ValueError(f"need at least 3 folds (train, valid, test), got {n_folds}")
    if len(names) < n_folds:
        raise ValueError(f"{len(names)} datasets cannot be split into {n_folds} dataset-level folds")
    order = np.random.default_rng(seed).permutation(len(names))
    fold_of = {names[j]: pos % n_folds for pos, j in enumerate(order)}

    def members(folds: set[int]) -> tuple[str, ...]:
        return tuple(d for d in names if fold_of[d] in folds)

    n_train = max(1, n_folds - 2)
    out = []
    for k in range(n_folds):
        train = {(k + i) % n_folds for i in range(n_train)}
        out.append(Split(k, members(train), members({(k + n_folds - 1) % n_folds}), members({(k + n_train) % n_folds})))
    return out


def split_of(dataset: str, datasets: Sequence[str], n_folds: int = 5, seed: int = 42) -> Split:
    """The split in which ``dataset`` is a test dataset."""
    for s in paper_splits(datasets, n_folds, seed):
        if dataset in s.test:
            return s
    raise ValueError(f"dataset {dataset!r} is not among the {len(set(datasets))} datasets given")
