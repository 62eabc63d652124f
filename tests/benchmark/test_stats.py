"""Friedman test and Nemenyi critical difference against hand-computed and published values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2

from benchmark.stats import (
    average_ranks,
    critical_difference,
    friedman_test,
    nemenyi_q,
    nonsignificant_groups,
)


def test_friedman_on_a_closed_form_example():
    # 4 blocks, 3 methods, the same order in every block: R = (1, 2, 3),
    # chi2 = 12 n / (k (k + 1)) * sum R_j^2 - 3 n (k + 1) = 4 * 14 - 48 = 8, p = exp(-4)
    scores = np.array([[0.1, 0.2, 0.3], [0.0, 0.5, 0.9], [0.2, 0.3, 0.4], [0.1, 0.15, 0.2]])
    res = friedman_test(scores)
    assert res.statistic == pytest.approx(8.0)
    assert res.pvalue == pytest.approx(np.exp(-4.0)) and res.pvalue == pytest.approx(chi2.sf(8.0, 2))
    assert (res.n_blocks, res.n_methods) == (4, 3)
    np.testing.assert_allclose(average_ranks(scores), [1.0, 2.0, 3.0])


def test_friedman_on_full_ties_and_bad_input():
    assert friedman_test(np.ones((3, 4))).pvalue == 1.0
    with pytest.raises(ValueError, match=">= 3 methods"):
        friedman_test(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="nan"):
        friedman_test(np.array([[0.1, np.nan, 0.3], [0.1, 0.2, 0.3]]))


def test_average_ranks_with_ties():
    np.testing.assert_allclose(average_ranks(np.array([[0.1, 0.1, 0.5], [0.3, 0.2, 0.1]])), [2.25, 1.75, 2.0])


@pytest.mark.parametrize(
    ("k", "q"),  # Demšar (2006), Table 5(a): two-tailed Nemenyi critical values at alpha = 0.05
    [(2, 1.960), (3, 2.343), (4, 2.569), (5, 2.728), (6, 2.850), (7, 2.949), (8, 3.031), (9, 3.102), (10, 3.164)],
)
def test_nemenyi_q_matches_demsar(k, q):
    assert nemenyi_q(k) == pytest.approx(q, abs=2e-3)


def test_critical_difference_by_hand():
    # k = 4 methods, n = 14 datasets: 2.569 * sqrt(20 / 84) = 1.2535 (Demšar's example: CD = 1.25)
    assert critical_difference(4, 14) == pytest.approx(2.569 * np.sqrt(20 / 84), abs=1e-3)
    assert critical_difference(3, 4, alpha=0.10) < critical_difference(3, 4, alpha=0.05)
    with pytest.raises(ValueError):
        critical_difference(1, 4)


def test_nonsignificant_groups():
    ranks = np.array([1.0, 1.5, 3.0, 2.2, 4.0])  # sorted: 0 (1.0), 1 (1.5), 3 (2.2), 2 (3.0), 4 (4.0)
    # from 1.5 only up to 2.2 (3.0 - 1.5 >= 1.3): contained in the first group, left out
    assert nonsignificant_groups(ranks, cd=1.3) == [(0, 1, 3), (3, 2), (2, 4)]
    assert nonsignificant_groups(ranks, cd=0.1) == []
    assert nonsignificant_groups(ranks, cd=10.0) == [(0, 1, 3, 2, 4)]
