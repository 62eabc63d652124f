"""Figures of a store's data card, drawn with matplotlib's Agg canvas (no pyplot, no global state).

:func:`write_figures` aggregates the card's per-run frame (see :func:`metagen.store.card.load_runs`)
with polars; each drawing function takes the aggregated numbers, writes one PNG and returns its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from metagen.store.quality import QualityReport

DPI = 110
WIDTH = 7.0
"""Figure width in inches; heights follow from the content."""

HEATMAP_MAX_MODELS = 60
HEATMAP_MAX_DATASETS = 150
"""A runs heatmap larger than this cannot be read, so the card leaves it out."""

MAX_BARS = 80
"""Models drawn in the bar chart (those with most runs)."""

_ANNOTATE_MAX_CELLS = 400
QUALITY_MAX_DATASETS = 150
"""A quality chart with more datasets than this cannot be read, so the card leaves it out."""
FIGURES = ("curve_lengths", "final_accuracy", "runs_per_model", "runs_per_dataset", "runs_heatmap", "quality")
"""File stems of the figures a card may have."""


def write_figures(runs: pl.DataFrame, fig_dir: Path, quality: QualityReport | None = None) -> dict[str, Path]:
    """Draw the card's figures into ``fig_dir``; returns figure key -> PNG path (none for an empty store).

    The quality chart is drawn when a quality report is given and has at most :data:`QUALITY_MAX_DATASETS` datasets.
    """
    for key in FIGURES:  # figures of an earlier card that this one may not redraw
        (fig_dir / f"{key}.png").unlink(missing_ok=True)
    if runs.height == 0:
        return {}
    versions = runs["dataset_version"].unique().sort().to_list()
    by_version = {v: runs.filter(pl.col("dataset_version") == v) for v in versions}
    out = {
        "curve_lengths": curve_length_histogram(
            {v: df["n_epochs"].to_numpy() for v, df in by_version.items()}, fig_dir / "curve_lengths.png"
        ),
        "final_accuracy": final_accuracy_histogram(
            {v: df.filter(pl.col("final_top1").is_finite())["final_top1"].to_numpy() for v, df in by_version.items()},
            fig_dir / "final_accuracy.png",
        ),
    }
    per_model = runs_by(runs, "model", versions)
    top = per_model.head(MAX_BARS)
    out["runs_per_model"] = runs_per_model_bars(
        top["model"].to_list(),
        {v: top[v].to_numpy() for v in versions},
        fig_dir / "runs_per_model.png",
        of=per_model.height,
    )
    per_dataset = runs.group_by("dataset_version", "dataset").len().sort("len", descending=True)
    out["runs_per_dataset"] = runs_per_dataset_bars(
        {v: per_dataset.filter(pl.col("dataset_version") == v)["len"].to_numpy() for v in versions},
        fig_dir / "runs_per_dataset.png",
    )
    heatmap = _heatmap_counts(runs)
    if heatmap is not None:
        out["runs_heatmap"] = runs_heatmap(*heatmap, fig_dir / "runs_heatmap.png")
    if quality is not None and 0 < len(quality.datasets) <= QUALITY_MAX_DATASETS:
        out["quality"] = quality_chart(quality, fig_dir / "quality.png")
    return out


def runs_by(runs: pl.DataFrame, column: str, versions: list[str]) -> pl.DataFrame:
    """Runs per value of ``column``: one column per version plus ``total``, most runs first."""
    counts = runs.group_by(column, "dataset_version").len()
    wide = counts.pivot(on="dataset_version", index=column, values="len").fill_null(0)
    for v in versions:
        if v not in wide.columns:
            wide = wide.with_columns(pl.lit(0, pl.UInt32).alias(v))
    wide = wide.select(column, *versions).with_columns(pl.sum_horizontal(versions).alias("total"))
    return wide.sort(["total", column], descending=[True, False])


def _heatmap_counts(runs: pl.DataFrame) -> tuple[np.ndarray, list[str], list[str]] | None:
    """(counts, models, ``version/dataset`` labels) for the runs heatmap, or None if it is too big."""
    cells = runs.group_by("model", "dataset_version", "dataset").len()
    cells = cells.with_columns(pl.concat_str("dataset_version", "dataset", separator="/").alias("column"))
    models = cells["model"].unique().sort().to_list()
    columns = cells["column"].unique().sort().to_list()
    if len(models) > HEATMAP_MAX_MODELS or len(columns) > HEATMAP_MAX_DATASETS:
        return None
    counts = np.zeros((len(models), len(columns)), dtype=np.int64)
    rows = np.searchsorted(np.array(models), cells["model"].to_numpy())
    cols = np.searchsorted(np.array(columns), cells["column"].to_numpy())
    counts[rows, cols] = cells["len"].to_numpy()
    return counts, models, columns


def _save(fig: Figure, path: Path) -> Path:
    """Render a figure to a PNG with the Agg canvas and return the path."""
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _per_version_axes(n: int, height: float = 2.0) -> tuple[Figure, list[Axes]]:
    """A figure with one row of axes per version, sharing the x axis."""
    fig = Figure(figsize=(WIDTH, 0.6 + height * max(n, 1)))
    axes = fig.subplots(max(n, 1), 1, sharex=True, squeeze=False)[:, 0]
    for ax in axes:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig, list(axes)


def curve_length_histogram(lengths: Mapping[str, np.ndarray], path: Path) -> Path:
    """Histogram of epochs per run, one panel per version.

    Args:
        lengths: version -> ``n_epochs`` of each of its runs.
        path: the PNG to write.

    Returns:
        ``path``.
    """
    longest = max((int(v.max()) for v in lengths.values() if v.size), default=1)
    bins = np.arange(-0.5, longest + 1.5) if longest <= 100 else np.linspace(0, longest, 51)
    fig, axes = _per_version_axes(len(lengths))
    for ax, (version, values) in zip(axes, lengths.items(), strict=False):
        ax.hist(values, bins=bins.tolist(), color="tab:blue")
        ax.set_ylabel("runs")
        ax.set_title(f"{version}: {values.size:,} runs", fontsize=9, loc="left")
    axes[-1].set_xlabel("curve length (epochs)")
    fig.suptitle("Curve lengths per version")
    return _save(fig, path)


def final_accuracy_histogram(accuracies: Mapping[str, np.ndarray], path: Path) -> Path:
    """Histogram of each run's last-epoch validation top-1 (a fraction), one panel per version.

    Args:
        accuracies: version -> final ``eval_top1`` of its runs (NaN/missing already removed).
        path: the PNG to write.

    Returns:
        ``path``.
    """
    fig, axes = _per_version_axes(len(accuracies))
    bins = np.linspace(0.0, 1.0, 41)
    for ax, (version, values) in zip(axes, accuracies.items(), strict=False):
        ax.hist(values, bins=bins.tolist(), color="tab:green")
        ax.set_ylabel("runs")
        ax.set_xlim(0.0, 1.0)
        ax.set_title(f"{version}: {values.size:,} runs with a finite final accuracy", fontsize=9, loc="left")
    axes[-1].set_xlabel("final validation top-1 (fraction)")
    fig.suptitle("Final accuracy per version")
    return _save(fig, path)


def runs_per_model_bars(
    models: Sequence[str], counts: Mapping[str, np.ndarray], path: Path, of: int | None = None
) -> Path:
    """Horizontal bars of runs per model, stacked by version.

    Args:
        models: model names, in the order to draw them (top to bottom).
        counts: version -> runs per model, aligned with ``models``.
        path: the PNG to write.
        of: how many models there are in all, when ``models`` is only the top of them.

    Returns:
        ``path``.
    """
    fig = Figure(figsize=(WIDTH, 1.0 + 0.25 * max(len(models), 1)))
    ax = fig.subplots()
    y = np.arange(len(models))
    left = np.zeros(len(models))
    for version, values in counts.items():
        ax.barh(y, values, left=left, label=version)
        left = left + values
    ax.set_yticks(y, labels=list(models), fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("runs (curves)")
    ax.legend(title="version", fontsize=8)
    top = f" (top {len(models)} of {of:,})" if of is not None and of > len(models) else ""
    ax.set_title(f"Curves per model{top}")
    return _save(fig, path)


def runs_per_dataset_bars(counts: Mapping[str, np.ndarray], path: Path) -> Path:
    """Runs per dataset sorted from most to fewest, one panel per version (datasets unlabelled).

    Args:
        counts: version -> runs of each of its datasets, sorted descending.
        path: the PNG to write.

    Returns:
        ``path``.
    """
    fig = Figure(figsize=(WIDTH, 0.6 + 2.0 * max(len(counts), 1)))
    axes = fig.subplots(max(len(counts), 1), 1, squeeze=False)[:, 0]
    for ax, (version, values) in zip(axes, counts.items(), strict=False):
        ax.bar(np.arange(values.size), values, width=1.0, color="tab:purple")
        ax.set_ylabel("runs")
        ax.set_xticks([])
        ax.set_title(f"{version}: {values.size:,} datasets", fontsize=9, loc="left")
    axes[-1].set_xlabel("datasets, sorted by runs")
    fig.suptitle("Curves per dataset")
    return _save(fig, path)


def runs_heatmap(counts: np.ndarray, models: Sequence[str], datasets: Sequence[str], path: Path) -> Path:
    """Heatmap of runs per (model, dataset), with counts written in the cells when there are few.

    Args:
        counts: ``(len(models), len(datasets))`` run counts.
        models: row labels.
        datasets: column labels (``version/dataset``).
        path: the PNG to write.

    Returns:
        ``path``.
    """
    n_rows, n_cols = counts.shape
    fig = Figure(figsize=(max(WIDTH, 1.5 + 0.22 * n_cols), 1.5 + 0.22 * n_rows))
    ax = fig.subplots()
    image = ax.imshow(counts, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(np.arange(n_rows), labels=list(models), fontsize=6)
    ax.set_xticks(np.arange(n_cols), labels=list(datasets), fontsize=6, rotation=90)
    if counts.size <= _ANNOTATE_MAX_CELLS:
        threshold = counts.max() / 2 if counts.size else 0
        for (i, j), value in np.ndenumerate(counts):
            colour = "black" if value > threshold else "white"
            ax.text(j, i, str(int(value)), ha="center", va="center", fontsize=6, color=colour)
    fig.colorbar(image, ax=ax, label="runs")
    ax.set_title("Runs per model and dataset")
    return _save(fig, path)


def quality_chart(report: QualityReport, path: Path) -> Path:
    """Per dataset: bars of the best and median final accuracy, markers at the pixel baseline and at chance.

    Args:
        report: the store's quality report (datasets drawn top to bottom in its order).
        path: the PNG to write.

    Returns:
        ``path``.
    """
    datasets = report.datasets
    several = len({d.version for d in datasets}) > 1
    labels = [f"{d.version}/{d.dataset}" if several else d.dataset for d in datasets]

    def values(attr: str) -> np.ndarray:
        return np.array([np.nan if getattr(d, attr) is None else getattr(d, attr) for d in datasets], dtype=float)

    y = np.arange(len(datasets))
    fig = Figure(figsize=(WIDTH, 1.2 + 0.3 * len(datasets)))
    ax = fig.subplots()
    ax.barh(y, np.nan_to_num(values("best")), height=0.7, color="tab:blue", alpha=0.35, label="best run")
    ax.barh(y, np.nan_to_num(values("median")), height=0.35, color="tab:blue", label="median run")
    pixel = values("pixel")
    if np.isfinite(pixel).any():
        ax.plot(pixel, y, "kx", markersize=7, label="pixel LR")
    chance = values("chance")
    ax.plot(chance, y, "|", color="tab:red", markersize=14, markeredgewidth=2, label="chance (1/K)")
    ax.set_yticks(y, labels=labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("final validation top-1 (fraction)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Best and median final accuracy per dataset")
    return _save(fig, path)
