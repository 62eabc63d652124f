"""Fig. 3, 4 and 6: regret and rank over time of one experiment's methods, one panel per version.

The curves are :func:`benchmark.figures.over_time_panels` of the experiment's methods only (ranks among them),
mean over (dataset, seed) runs with a 95 % Student-t band (:func:`benchmark.metrics.mean_ci`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

from benchmark.figures import Style, method_styles, over_time_panels, plot_over_time
from benchmark.paper.common import subset
from benchmark.results import Results


def over_time_figures(
    results: Results,
    labels: Mapping[str, Sequence[str]],
    title: str,
    styles: Mapping[str, Style] | None = None,
    grid: str = "log",
) -> tuple[Figure, Figure | None] | None:
    """Regret and rank over time of ``labels[version]`` in each version; ``None`` when none has a result.

    Returns:
        ``(regret_figure, rank_figure)``; the rank figure is ``None`` when no run has every method's result.
    """
    sub = subset(results, labels)
    if sub is None:
        return None
    styles = styles or method_styles(sub.methods())
    regret_panels, rank_panels = over_time_panels(sub, grid)
    regret = plot_over_time(regret_panels, styles, "Normalized regret (mean, 95 % CI)", log_x=grid == "log")
    regret.suptitle(title, fontsize=10)
    rank = None
    if rank_panels:
        rank = plot_over_time(rank_panels, styles, "Rank (1 = best; mean, 95 % CI)", log_x=grid == "log", rank=True)
        rank.suptitle(title, fontsize=10)
    return regret, rank
