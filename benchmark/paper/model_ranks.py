"""Fig. 1: ranks of the models across datasets, each model by its best HPO-tuned pipeline, from the store.

A model's score on a dataset is the highest accuracy of any recorded epoch of any of its candidate
pipelines there (what an exhaustive search over the store's pipelines of that model finds); the models are
ranked per dataset (1 = best, ties share the average rank). A model without a candidate on a dataset has no
rank there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from scipy.stats import rankdata

from benchmark.task import Task


@dataclass(frozen=True)
class ModelRanks:
    """``ranks[i, j]``: rank of ``models[i]`` on ``datasets[j]`` (``nan``: no candidate); ``best[i, j]`` its
    best accuracy. Models are sorted by mean rank."""

    version: str
    models: tuple[str, ...]
    datasets: tuple[str, ...]
    ranks: np.ndarray
    best: np.ndarray


def model_ranks(tasks: Sequence[Task]) -> ModelRanks:
    """The rank of every model on every task (one version's datasets)."""
    models = sorted({m for t in tasks for m in t.view.models})
    best = np.full((len(models), len(tasks)), np.nan)
    for j, task in enumerate(tasks):
        names = np.asarray(task.view.models)
        top = np.where(np.isnan(task.values), -np.inf, task.values).max(axis=1)
        for i, m in enumerate(models):
            own = top[names == m]
            if own.size and np.isfinite(own.max()):
                best[i, j] = own.max()
    ranks = np.full_like(best, np.nan)
    for j in range(len(tasks)):
        ok = ~np.isnan(best[:, j])
        ranks[ok, j] = rankdata(-best[ok, j], method="average")
    order = np.argsort(np.nanmean(np.where(np.isnan(ranks), np.nan, ranks), axis=1), kind="stable")
    version = tasks[0].version if tasks else ""
    return ModelRanks(
        version, tuple(models[i] for i in order), tuple(t.dataset for t in tasks), ranks[order], best[order]
    )


def plot_model_ranks(mr: ModelRanks) -> Figure:
    """Heatmap models x datasets of the ranks (dark = best), the rank written in each cell when it fits."""
    n_m, n_d = len(mr.models), len(mr.datasets)
    fig = Figure(figsize=(2.5 + 0.32 * n_d, 1.2 + 0.26 * n_m), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(mr.ranks), cmap="viridis", aspect="auto", vmin=1, vmax=max(n_m, 2))
    ax.set_xticks(range(n_d), mr.datasets, rotation=90, fontsize=7)
    ax.set_yticks(range(n_m), [m.split(".")[0] for m in mr.models], fontsize=7)
    if n_d * n_m <= 900:
        for i in range(n_m):
            for j in range(n_d):
                if not np.isnan(mr.ranks[i, j]):
                    light = mr.ranks[i, j] > 0.6 * n_m
                    ax.text(j, i, f"{mr.ranks[i, j]:g}", ha="center", va="center", fontsize=5,
                            color="black" if light else "white")  # fmt: skip
    fig.colorbar(image, ax=ax, label="rank (1 = best)")
    ax.set_title(f"{mr.version}: rank of each model's best pipeline per dataset", fontsize=9)
    return fig
