"""The paper's fixed 60/20/20 split."""

from __future__ import annotations

import numpy as np
import pytest

from metagen.datasets import Split, split_indices


def quicktune_split(n: int, split: str, seed: int = 93) -> list[int]:
    """Independent re-statement of Quick-Tune's StandardDataset split: items kept in file order if in the split."""
    idxs = np.arange(n)
    np.random.default_rng(seed).shuffle(idxs)
    val_end, test_end = int(n * 0.2), int(n * (0.2 + 0.2))
    chosen = {"train": idxs[test_end:], "val": idxs[:val_end], "test": idxs[val_end:test_end]}[split].tolist()
    return [i for i in range(n) if i in chosen]


@pytest.mark.parametrize("n", [5, 7, 12, 30, 100, 801])
def test_matches_quicktune_rule(n: int) -> None:
    s = split_indices(n)
    for name in ("train", "val", "test"):
        assert getattr(s, name).tolist() == quicktune_split(n, name)
        assert getattr(s, name).dtype == np.int64


@pytest.mark.parametrize(("n", "sizes"), [(100, (60, 20, 20)), (12, (8, 2, 2)), (7, (5, 1, 1)), (801, (481, 160, 160))])
def test_sizes(n: int, sizes: tuple[int, int, int]) -> None:
    s = split_indices(n)
    assert (len(s.train), len(s.val), len(s.test)) == sizes
    assert s.sizes() == dict(zip(("train", "val", "test"), sizes, strict=True))


def test_disjoint_and_covering() -> None:
    s = split_indices(250)
    all_idx = np.concatenate([s.train, s.val, s.test])
    assert len(np.unique(all_idx)) == 250
    assert sorted(all_idx.tolist()) == list(range(250))


def test_deterministic_and_seeded() -> None:
    a, b, c = split_indices(200), split_indices(200, 93), split_indices(200, 94)
    assert isinstance(a, Split)
    assert np.array_equal(a.val, b.val) and np.array_equal(a.train, b.train)
    assert not np.array_equal(a.val, c.val)


def test_rejects_negative() -> None:
    with pytest.raises(ValueError):
        split_indices(-1)
