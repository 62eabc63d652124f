"""Paired regret comparison of two runs of the same cells (benchmark.paired)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import ttest_rel

from benchmark.paired import paired_markdown, paired_regret
from benchmark.results import ResultsError, load_results
from tests.benchmark.results_factory import write_run

DATASETS = ("d0", "d1", "d2", "d3")


def _runs(root: Path, finals: dict[tuple[str, int], float], method: str = "m") -> Path:
    """One cell per (dataset, seed): regret 1 until t = 10, then 0.5 until t = 60, then the given final."""
    for (d, s), final in finals.items():
        write_run(root, "micro", method, d, s, [10.0, 60.0], [0.5, final], budget_s=100.0)
    return root


def test_differences_are_paired_per_cell_and_the_interval_is_scipys(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a_final = {(d, s): float(rng.uniform(0.1, 0.4)) for d in DATASETS for s in (0, 1)}
    shift = {d: 0.02 * i for i, d in enumerate(DATASETS)}
    b_final = {k: v + shift[k[0]] + 0.005 * k[1] for k, v in a_final.items()}
    a = load_results(_runs(tmp_path / "a", a_final))
    b = load_results(_runs(tmp_path / "b", {**b_final, ("d9", 0): 0.9}))  # a cell only B has is left out
    table = paired_regret(a, b, "micro", fractions=(0.5, 1.0))
    half, full = table.row(0, named=True), table.row(1, named=True)
    assert half["diff_mean"] == half["diff_ci95"] == 0.0 and half["equal"] is True  # both at 0.5 at t = 50
    per_dataset_a = [np.mean([a_final[(d, s)] for s in (0, 1)]) for d in DATASETS]
    per_dataset_b = [np.mean([b_final[(d, s)] for s in (0, 1)]) for d in DATASETS]
    ci = ttest_rel(per_dataset_b, per_dataset_a).confidence_interval(0.95)
    assert full["diff_mean"] == pytest.approx(np.mean([shift[d] + 0.0025 for d in DATASETS]))
    assert full["diff_mean"] - full["diff_ci95"] == pytest.approx(ci.low)
    assert full["diff_mean"] + full["diff_ci95"] == pytest.approx(ci.high)
    assert full["n_datasets"] == 4 and full["n_pairs"] == 8 and full["equal"] is False  # mean 0.0325 >= 0.01
    assert full["regret_a"] == pytest.approx(np.mean(per_dataset_a))
    assert "| m | 100 % |" in paired_markdown(table)


def test_equal_needs_an_interval_around_zero_and_a_small_mean(tmp_path: Path) -> None:
    a_final = {(d, s): 0.2 for d in DATASETS for s in (0, 1)}
    noise = {("d0", 0): 0.004, ("d1", 0): -0.003, ("d2", 1): 0.002, ("d3", 1): -0.004}
    a = load_results(_runs(tmp_path / "a", a_final))
    b = load_results(_runs(tmp_path / "b", {k: v + noise.get(k, 0.0) for k, v in a_final.items()}))
    row = paired_regret(a, b, "micro", fractions=(1.0,)).row(0, named=True)
    assert abs(row["diff_mean"]) < 0.01 and row["diff_ci95"] >= abs(row["diff_mean"]) and row["equal"] is True


def test_methods_must_be_in_both_runs(tmp_path: Path) -> None:
    a = load_results(_runs(tmp_path / "a", {("d0", 0): 0.1}))
    b = load_results(_runs(tmp_path / "b", {("d0", 0): 0.1}, method="other"))
    with pytest.raises(ResultsError, match="not in both"):
        paired_regret(a, b, "micro")
