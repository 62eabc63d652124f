"""Tiny RESULTS directories (contract D layout) written in-process for the metrics and figures tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from benchmark.results import RESULT_SCHEMA, cell_path, write_cell


def write_run(
    root: Path,
    version: str,
    method: str,
    dataset: str,
    seed: int,
    times: npt.ArrayLike,
    regrets: npt.ArrayLike,
    budget_s: float = 100.0,
) -> Path:
    """Writes one result file whose events have the given times and regrets (incumbent = 1 - regret)."""
    t = np.asarray(times, dtype=np.float64)
    n = t.size
    reg = np.asarray(regrets, dtype=np.float64)
    frame = pl.DataFrame(
        {
            "method": [method] * n,
            "version": [version] * n,
            "dataset": [dataset] * n,
            "seed": np.full(n, seed, dtype=np.int64),
            "step": np.arange(n, dtype=np.int64),
            "time": t,
            "pipeline": np.zeros(n, dtype=np.int64),
            "epoch": np.arange(1, n + 1, dtype=np.int64),
            "value": 1.0 - reg,
            "incumbent": 1.0 - reg,
            "regret": reg,
            "budget_s": np.full(n, budget_s),
        },
        schema=RESULT_SCHEMA,
    )
    path = cell_path(root, version, method, dataset, seed)
    write_cell(path, frame)
    return path


def write_random_results(
    root: Path,
    versions: Sequence[str] = ("micro",),
    methods: Sequence[str] = ("a", "b", "c"),
    datasets: Sequence[str] = ("d0", "d1", "d2"),
    seeds: Sequence[int] = (0, 1),
    budget_s: float = 100.0,
    seed: int = 0,
) -> Path:
    """A RESULTS directory of random decreasing regret trajectories; method ``i`` improves faster for larger ``i``."""
    rng = np.random.default_rng(seed)
    for v in versions:
        for mi, m in enumerate(methods):
            for d in datasets:
                for s in seeds:
                    times = np.sort(rng.uniform(0.5, budget_s, size=8))
                    reg = np.minimum.accumulate(rng.uniform(0, 1, size=8) / (1 + mi))
                    write_run(root, v, m, d, s, times, reg, budget_s)
    return root
