"""The paper's dataset-level 5-fold scheme for meta-training (reference §4.1, ``SPLITS``).

Datasets of a version are shuffled with ``default_rng(seed)`` (42 in the reference) and fold ``k``
holds every dataset whose shuffled index is ``k`` mod 5. Split ``k`` meta-trains on folds
``k, k+1, k+2``, validates (checkpoint selection) on ``k+4`` and tests on ``k+3`` (mod 5), so every
dataset is a test dataset exactly once and test datasets are never seen in meta-training.

What is shuffled decides the folds. The reference (``PerformanceMetaLearner.get_splits``) shuffles, in place,
the list of the meta-dataset's full dataset keys in the order of ``eval_top1.json``
(``mtlbm/micro/set0/BCT``, ...). An imported store keeps that list (``metagen.store.layout.dataset_keys``), and
:func:`paper_splits` shuffles it when given, so imported data gets the paper's folds; other stores shuffle their
sorted dataset names. Imports neither torch nor timm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from metagen.store.layout import dataset_of_key


@dataclass(frozen=True)
class Split:
    """One meta-training split: disjoint train / validation / test datasets."""

    index: int
    train: tuple[str, ...]
    valid: tuple[str, ...]
    test: tuple[str, ...]


def paper_splits(datasets: Sequence[str], n_folds: int = 5, seed: int = 42, keys: Sequence[str] = ()) -> list[Split]:
    """The ``n_folds`` splits of ``datasets`` (their order does not matter).

    Args:
        datasets: dataset names.
        n_folds: folds (at least 3: train, valid, test).
        seed: seed of the shuffle (42 in the reference).
        keys: the source's full dataset keys in source order, as an import recorded them; a key names the dataset
            of its last path component. Given, this list is shuffled, as the reference does; datasets no key
            names follow the keys, sorted; keys of datasets not in ``datasets`` keep their place in the shuffle
            (the reference shuffles every key) but join no split. Empty: the sorted names are shuffled.
    """
    names = sorted(set(datasets))
    if n_folds < 3:
        raise ValueError(f"need at least 3 folds (train, valid, test), got {n_folds}")
    if len(names) < n_folds:
        raise ValueError(f"{len(names)} datasets cannot be split into {n_folds} dataset-level folds")
    keyed = [dataset_of_key(k) for k in keys]
    if len(set(keyed)) < len(keyed):
        raise ValueError(f"dataset keys {list(keys)} name one dataset twice (by their last path component)")
    base = keyed + [n for n in names if n not in set(keyed)]
    # np.random.default_rng(seed).shuffle(base) would give the same order (the reference shuffles a list in place)
    order = np.random.default_rng(seed).permutation(len(base))
    fold_of = {base[j]: pos % n_folds for pos, j in enumerate(order)}

    def members(folds: set[int]) -> tuple[str, ...]:
        return tuple(d for d in names if fold_of[d] in folds)

    n_train = max(1, n_folds - 2)
    out = []
    for k in range(n_folds):
        train = {(k + i) % n_folds for i in range(n_train)}
        out.append(Split(k, members(train), members({(k + n_folds - 1) % n_folds}), members({(k + n_train) % n_folds})))
    return out


def split_of(
    dataset: str, datasets: Sequence[str], n_folds: int = 5, seed: int = 42, keys: Sequence[str] = ()
) -> Split:
    """The split in which ``dataset`` is a test dataset (``keys``: see :func:`paper_splits`)."""
    for s in paper_splits(datasets, n_folds, seed, keys):
        if dataset in s.test:
            return s
    raise ValueError(f"dataset {dataset!r} is not among the {len(set(datasets))} datasets given")
