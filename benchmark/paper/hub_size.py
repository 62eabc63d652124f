"""Fig. 5: Quick-Tune's regret vs. the size of its model hub (random sub-hubs drawn with the optimizer's seed).

Per version and hub size, the mean regret over datasets (seeds averaged) at a few budget fractions, with the
95 % Student-t half-width (:func:`benchmark.metrics.summary_table`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl
from matplotlib.figure import Figure

from benchmark.figures import OKABE_ITO
from benchmark.metrics import _ordered_versions, summary_table
from benchmark.paper.common import subset
from benchmark.results import Results


def hub_size_table(
    results: Results, sizes: Mapping[str, Mapping[str, int]], fractions: Sequence[float] = (0.1, 0.5, 1.0)
) -> pl.DataFrame | None:
    """Regret per (version, hub size, fraction); ``sizes[version][label]`` is the hub size of a label.

    Returns:
        Columns ``version, hub_size, method, fraction, regret_mean, regret_std, regret_ci95, n_datasets``, or
        ``None`` without results.
    """
    sub = subset(results, {v: list(s) for v, s in sizes.items()})
    if sub is None:
        return None
    size = pl.DataFrame(
        [(v, m, int(k)) for v, s in sizes.items() for m, k in s.items()],
        schema=["version", "method", "hub_size"],
        orient="row",
    )
    table = summary_table(sub, fractions).join(size, on=["version", "method"])
    cols = ["version", "hub_size", "method", "fraction", "regret_mean", "regret_std", "regret_ci95", "n_datasets"]
    return table.select(cols).sort("version", "fraction", "hub_size")


def plot_hub_size(table: pl.DataFrame) -> Figure:
    """One panel per version: regret (mean, 95 % CI) vs. hub size, one line per budget fraction."""
    versions = _ordered_versions(table["version"].unique().to_list())
    fig = Figure(figsize=(4.3 * len(versions), 3.6), layout="constrained")
    axes = fig.subplots(1, len(versions), squeeze=False)[0]
    fractions = sorted(table["fraction"].unique().to_list())
    for ax, version in zip(axes, versions, strict=True):
        for i, f in enumerate(fractions):
            rows = table.filter((pl.col("version") == version) & (pl.col("fraction") == f)).sort("hub_size")
            ci = rows["regret_ci95"].fill_nan(0.0).to_numpy()
            color, label = OKABE_ITO[i % len(OKABE_ITO)], f"{100 * f:g} % of the budget"
            x, y = rows["hub_size"].to_numpy(), rows["regret_mean"].to_numpy()
            ax.errorbar(x, y, yerr=ci, marker="o", capsize=3, color=color, label=label)
        ax.set_xticks(sorted(table.filter(pl.col("version") == version)["hub_size"].unique().to_list()))
        ax.set_ylim(bottom=0.0)
        ax.set_title(version)
        ax.set_xlabel("Models in the hub")
        ax.set_ylabel("Normalized regret (mean, 95 % CI)")
        ax.grid(True, alpha=0.3)
    axes[0].legend(frameon=False, fontsize=8)
    return fig
