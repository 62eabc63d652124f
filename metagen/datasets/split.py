"""The paper's fixed 60/20/20 train/val/test split of a Meta-Album dataset (quicktune-method.md §2.2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAPER_SPLIT_SEED = 93
"""Seed of ``np.random.default_rng`` in Quick-Tune's ``StandardDataset``."""

VAL_FRACTION = 0.2
TEST_FRACTION = 0.2


@dataclass(frozen=True, eq=False)
class Split:
    """Index arrays into a dataset's fixed-order files; the three are disjoint and cover all images.

    Attributes:
        train: (n_train,) int64, ascending.
        val: (n_val,) int64, ascending.
        test: (n_test,) int64, ascending.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        """Number of images per split: ``{"train": ..., "val": ..., "test": ...}``."""
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def split_indices(n: int, seed: int = PAPER_SPLIT_SEED) -> Split:
    """Quick-Tune's split of ``n`` fixed-order items.

    ``np.arange(n)`` is shuffled in place by ``np.random.default_rng(seed)``; the first ``int(0.2 n)`` shuffled indices
    are val, the next ones up to ``int(0.4 n)`` test, the rest train. Each split is returned sorted, the order in
    which Quick-Tune's dataset holds its items (it keeps items whose index is in the split, in file order).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    idx = np.arange(n, dtype=np.int64)
    np.random.default_rng(seed).shuffle(idx)
    val_end = int(n * TEST_FRACTION)  # Quick-Tune uses test_size here; both fractions are 0.2
    test_end = int(n * (TEST_FRACTION + VAL_FRACTION))
    return Split(train=np.sort(idx[test_end:]), val=np.sort(idx[:val_end]), test=np.sort(idx[val_end:test_end]))
