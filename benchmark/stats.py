"""Significance of differences between methods: Friedman test, Nemenyi critical difference (Demšar 2006).

Scores are laid out ``(n_blocks, k_methods)``; a block is one dataset (its seeds averaged), lower score = better
(regret). Imports neither torch nor matplotlib.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import friedmanchisquare, rankdata, studentized_range


@dataclass(frozen=True)
class FriedmanResult:
    """Friedman test of ``k`` methods on ``n`` blocks.

    Attributes:
        statistic: the chi-square statistic (with scipy's tie correction).
        pvalue: its p-value (chi-square with ``k - 1`` degrees of freedom).
        n_blocks, n_methods: ``n`` and ``k``.
    """

    statistic: float
    pvalue: float
    n_blocks: int
    n_methods: int


def _check_scores(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"scores must be (n_blocks, k_methods), got shape {s.shape}")
    if np.isnan(s).any():
        raise ValueError("scores hold nan: keep only blocks where every method has a result")
    return s


def average_ranks(scores: np.ndarray) -> np.ndarray:
    """Mean rank of each method over the blocks; rank 1 = lowest score; ties share their average rank.

    Args:
        scores: ``(n, k)`` scores, lower is better.

    Returns:
        ``(k,)`` average ranks in ``[1, k]``.
    """
    s = _check_scores(scores)
    return rankdata(s, axis=1, method="average").mean(axis=0)


def friedman_test(scores: np.ndarray) -> FriedmanResult:
    """Friedman test that all methods perform alike (scipy's ``friedmanchisquare``).

    Args:
        scores: ``(n, k)`` scores, ``n >= 2`` blocks and ``k >= 3`` methods.
    """
    s = _check_scores(scores)
    n, k = s.shape
    if k < 3 or n < 2:
        raise ValueError(f"the Friedman test needs >= 3 methods and >= 2 blocks, got {k} methods on {n} blocks")
    if np.all(s == s[:, :1]):
        return FriedmanResult(0.0, 1.0, n, k)  # every block a full tie: no evidence of any difference
    res = friedmanchisquare(*s.T)
    return FriedmanResult(float(res.statistic), float(res.pvalue), n, k)


def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """Critical value ``q_alpha`` of the Nemenyi test for ``k`` methods (studentized range / sqrt 2)."""
    if k < 2:
        raise ValueError(f"the Nemenyi test needs >= 2 methods, got {k}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    return float(studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2))


def critical_difference(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference of average ranks: ``q_alpha * sqrt(k (k + 1) / (6 n))``.

    Two methods whose average ranks over ``n`` blocks differ by at least this differ significantly at ``alpha``.
    """
    if n < 1:
        raise ValueError(f"the critical difference needs >= 1 block, got {n}")
    return nemenyi_q(k, alpha) * float(np.sqrt(k * (k + 1) / (6.0 * n)))


def nonsignificant_groups(avg_ranks: np.ndarray, cd: float) -> list[tuple[int, ...]]:
    """Maximal groups of methods whose average ranks lie within less than ``cd`` of each other.

    These are the bars of a critical-difference diagram. A group is a run of methods in rank order; groups that
    are contained in another group, and single methods, are left out.

    Args:
        avg_ranks: ``(k,)`` average ranks.
        cd: the critical difference.

    Returns:
        Groups as tuples of method indices, each sorted by rank, the groups sorted by their best rank.
    """
    r = np.asarray(avg_ranks, dtype=np.float64)
    order = np.argsort(r, kind="stable")
    sorted_r = r[order]
    groups: list[tuple[int, ...]] = []
    last_end = -1
    for i in range(len(order)):
        j = i
        while j + 1 < len(order) and sorted_r[j + 1] - sorted_r[i] < cd:
            j += 1
        if j > i and j > last_end:  # not contained in the previous (longer-reaching) group
            groups.append(tuple(int(x) for x in order[i : j + 1]))
            last_end = j
    return groups
