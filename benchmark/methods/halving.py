"""Successive-halving helpers shared by Hyperband (and BOHB, built on it) and ASHA.

Budgets are whole epochs; a candidate's result at a budget is its recorded value at that epoch, or at
its last epoch when its curve ended earlier (truncated or diverged), and candidates are ranked best first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from benchmark.protocol import BaseOptimizer


def check_halving(max_epochs: int, min_budget: int, eta: float) -> None:
    """ValueError unless ``max_epochs >= 1``, ``min_budget >= 1`` and ``eta > 1``."""
    if max_epochs < 1 or min_budget < 1 or eta <= 1:
        raise ValueError(f"need max_epochs >= 1, min_budget >= 1, eta > 1; got {max_epochs}, {min_budget}, {eta}")


def rank(candidates: Sequence[int], values: Sequence[float]) -> list[int]:
    """Candidates best first (highest value; nan last; ties keep the given order)."""
    key = np.array([-v if not math.isnan(v) else math.inf for v in values])
    return [candidates[j] for j in np.argsort(key, kind="stable")]


def value_at(opt: BaseOptimizer, candidate: int, budget: int) -> float:
    """What ``opt`` has seen of ``candidate`` at ``budget`` epochs: the value at ``min(budget, highest epoch
    trained)`` (a curve that ended earlier counts with its last value; ``nan`` = diverged or never trained)."""
    e = min(int(budget), int(opt.highest[candidate]))
    return float(opt.curves[candidate, e - 1]) if e >= 1 else math.nan
