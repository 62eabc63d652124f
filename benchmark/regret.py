"""Normalized regret, the benchmark's metric (reference §6.1); used by the replay's tasks and the metrics."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["normalized_regret"]


def normalized_regret(incumbent: npt.ArrayLike, best: float, worst: float) -> np.ndarray:
    """Normalized regret of incumbent accuracies on one dataset.

    Args:
        incumbent: ``(...)`` best accuracy found so far, ``nan`` before the first observation.
        best: the dataset's best accuracy in the table (regret 0).
        worst: the dataset's worst accuracy in the table (regret 1).

    Returns:
        ``(...)`` float64 ``(best - incumbent) / (best - worst)`` clipped to ``[0, 1]`` (as the replay's
        ``Task.regret``), 1.0 where ``incumbent`` is ``nan``. If the table holds one accuracy only (``best == worst``),
        the regret is 0 from the first observation at ``best`` on.
    """
    if not (np.isfinite(best) and np.isfinite(worst)) or best < worst:
        raise ValueError(f"normalized_regret needs finite best >= worst, got best={best}, worst={worst}")
    inc = np.asarray(incumbent, dtype=np.float64)
    span = best - worst
    with np.errstate(invalid="ignore"):
        regret = np.where(inc >= best, 0.0, 1.0) if span == 0 else (best - inc) / span
    return np.clip(np.where(np.isnan(inc), 1.0, regret), 0.0, 1.0)
