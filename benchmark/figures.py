"""Figures and tables of a RESULTS directory: regret and rank over time, summary tables, critical-difference diagrams.

``python -m benchmark.figures results=RESULTS out=DIR [fractions=[0.1,0.5,1.0]] [grid=log|linear|second]
[extra_results=[PEER_RESULTS,...]]`` writes into ``DIR``:

* ``regret_over_time.{png,pdf}`` and ``rank_over_time.{png,pdf}``: one panel per version, mean over
  (dataset, seed) runs with a 95 % confidence band, log time axis;
* ``summary.md`` and ``summary.csv``: regret and rank (mean ± std and 95 % CI over datasets) at each budget fraction;
* ``cd_<version>_<percent>.{png,pdf}`` and ``friedman.csv``: Friedman test and Nemenyi critical-difference
  diagram at each budget fraction (blocks = datasets, seeds averaged).

Plots use matplotlib's object API with the Agg canvas (no pyplot, no global state). Colors come from the
Okabe–Ito colorblind-safe palette and are fixed per method across all figures of a call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import hydra
import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from benchmark.config import FiguresConfig, register_configs
from benchmark.metrics import (
    _ordered_versions,
    mean_ci,
    ranks,
    regret_cube,
    summary_markdown,
    summary_table,
    time_grid,
)
from benchmark.results import Results, ResultsError, load_results, merge_results
from benchmark.stats import average_ranks, critical_difference, friedman_test, nonsignificant_groups
from metagen.exit_codes import BAD_INPUT, app_started, fail, missing_keys_message, run_hydra

register_configs()

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
LINESTYLES = ("-", "--", "-.", ":")
TIME_LABEL = "Wall-clock time (simulated, s)"


@dataclass(frozen=True)
class Style:
    """How one method is drawn in every figure."""

    color: str
    linestyle: str


def method_styles(methods: Sequence[str]) -> dict[str, Style]:
    """A fixed color (and, past 8 methods, line style) per method, in sorted-name order."""
    names = sorted(set(methods))
    return {
        m: Style(OKABE_ITO[i % len(OKABE_ITO)], LINESTYLES[(i // len(OKABE_ITO)) % len(LINESTYLES)])
        for i, m in enumerate(names)
    }


@dataclass(frozen=True)
class Band:
    """Mean and 95 % confidence half-width of one method over time.

    Attributes:
        mean, half: ``(T,)`` arrays on the panel's grid.
        n: number of runs averaged.
    """

    mean: np.ndarray
    half: np.ndarray
    n: int


@dataclass(frozen=True)
class Panel:
    """One version's curves: ``bands`` per method on ``grid`` (seconds)."""

    version: str
    grid: np.ndarray
    bands: Mapping[str, Band]
    n_datasets: int
    n_seeds: int


def over_time_panels(results: Results, grid: str = "log", grid_points: int = 256) -> tuple[list[Panel], list[Panel]]:
    """Regret and rank bands of every version over time.

    Regret bands average each method's own runs; rank bands use the runs every method of the version has.

    Returns:
        ``(regret_panels, rank_panels)``, one panel per version in the paper's version order.
    """
    regret_panels, rank_panels = [], []
    for version in _ordered_versions(results.versions):
        budget = results.budget_s(version)
        cube = regret_cube(results, version, time_grid(budget, grid, grid_points))
        n_datasets, n_seeds = len(cube.datasets), len({s for _, s in cube.runs})
        bands = {}
        for i, m in enumerate(cube.methods):
            mean, half = mean_ci(cube.regret[i], axis=0)
            bands[m] = Band(mean, half, int((~np.isnan(cube.regret[i, :, 0])).sum()))
        regret_panels.append(Panel(version, cube.grid, bands, n_datasets, n_seeds))
        done = cube.complete()
        if done.any():
            rk = ranks(cube.regret[:, done])
            rank_bands = {m: Band(*mean_ci(rk[i], axis=0), int(done.sum())) for i, m in enumerate(cube.methods)}
            rank_panels.append(Panel(version, cube.grid, rank_bands, n_datasets, n_seeds))
    return regret_panels, rank_panels


def plot_over_time(
    panels: Sequence[Panel], styles: Mapping[str, Style], ylabel: str, log_x: bool = True, rank: bool = False
) -> Figure:
    """One panel per version: mean line and 95 % band per method over simulated time."""
    fig = Figure(figsize=(4.3 * max(len(panels), 1), 3.8), layout="constrained")
    axes = fig.subplots(1, max(len(panels), 1), squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=False):
        for method, band in panel.bands.items():
            st = styles[method]
            x = panel.grid
            ax.plot(x, band.mean, color=st.color, linestyle=st.linestyle, linewidth=1.8, label=method)
            ax.fill_between(x, band.mean - band.half, band.mean + band.half, color=st.color, alpha=0.18, lw=0)
        if log_x and panel.grid[0] > 0:
            ax.set_xscale("log")
        ax.set_xlim(panel.grid[0], panel.grid[-1])
        if rank:
            ax.set_ylim(0.9, len(panel.bands) + 0.1)
        else:
            ax.set_ylim(bottom=0.0)
        plural = lambda n, word: f"{n} {word}" + ("" if n == 1 else "s")  # noqa: E731
        ax.set_title(f"{panel.version} ({plural(panel.n_datasets, 'dataset')} × {plural(panel.n_seeds, 'seed')})")
        ax.set_xlabel(TIME_LABEL)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
    handles, labels = {}, []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    if handles:
        fig.legend(
            [handles[lab] for lab in labels],
            labels,
            loc="outside lower center",
            ncol=min(len(labels), 6),
            frameon=False,
        )
    return fig


def plot_cd_diagram(
    avg_ranks: np.ndarray, names: Sequence[str], cd: float, title: str, styles: Mapping[str, Style] | None = None
) -> Figure:
    """Critical-difference diagram (Demšar 2006): methods on an average-rank axis (1 = best, left), thick bars
    joining methods whose ranks differ by less than the critical difference ``cd``."""
    r = np.asarray(avg_ranks, dtype=np.float64)
    k = len(r)
    order = np.argsort(r, kind="stable")
    n_left = (k + 1) // 2
    groups = nonsignificant_groups(r, cd)
    rows = max(n_left, k - n_left)
    height = 1.3 + 0.28 * rows + 0.12 * len(groups)
    fig = Figure(figsize=(7.0, height), layout="constrained")
    ax = fig.subplots()
    lo, hi = 1.0, float(max(k, 2))
    text_space = 0.45 * (hi - lo) + 0.6
    ax.set_xlim(lo - text_space, hi + text_space)
    y_axis, y_step = 0.0, 1.0
    y_first = 0.9 + 0.35 * len(groups)
    ax.set_ylim(y_first + y_step * rows, -1.4)
    ax.axis("off")
    ax.hlines(y_axis, lo, hi, color="black", linewidth=1.0)
    for t in range(1, k + 1):
        ax.vlines(t, y_axis - 0.12, y_axis, color="black", linewidth=1.0)
        ax.text(t, y_axis - 0.18, str(t), ha="center", va="bottom", fontsize=9)
    if k >= 2:  # the critical difference, drawn to scale above the axis
        ax.hlines(-0.95, lo, lo + cd, color="black", linewidth=1.5)
        ax.vlines([lo, lo + cd], -1.05, -0.85, color="black", linewidth=1.0)
        ax.text(lo + cd / 2, -1.08, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=9)
    for pos, idx in enumerate(order):
        left = pos < n_left
        row = pos if left else k - 1 - pos
        y = y_first + y_step * row
        x_end = lo - 0.25 if left else hi + 0.25
        color = styles[names[idx]].color if styles and names[idx] in styles else "black"
        ax.plot([r[idx], r[idx], x_end], [y_axis, y, y], color=color, linewidth=1.2)
        label = f"{names[idx]} ({r[idx]:.2f})"
        ax.text(
            x_end - 0.05 if left else x_end + 0.05, y, label, ha="right" if left else "left", va="center", fontsize=9
        )
    for gi, group in enumerate(groups):
        y = 0.35 + 0.35 * gi
        ax.hlines(y, r[group[0]] - 0.03, r[group[-1]] + 0.03, color="black", linewidth=3.0)
    ax.set_title(title, fontsize=10)
    return fig


def save(fig: Figure, base: Path, formats: Sequence[str], dpi: int) -> list[Path]:
    """Writes ``fig`` as ``base.<fmt>`` for each format; returns the paths."""
    FigureCanvasAgg(fig)
    paths = []
    for fmt in formats:
        path = base.with_suffix(f".{fmt}")
        # bbox tight keeps the legend whole; no creation date, so the same results give the same bytes
        metadata = {"CreationDate": None} if fmt == "pdf" else {}
        fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata=metadata)
        paths.append(path)
    return paths


def significance(results: Results, fractions: Sequence[float], alpha: float) -> list[dict]:
    """Friedman test, Nemenyi CD and average ranks per version and budget fraction.

    Blocks are datasets (seeds averaged) on which every method has a result for every seed it ran.
    Returns one dict per (version, fraction) with the tested ``methods`` and their ``avg_ranks``.
    """
    fr = np.asarray(sorted(set(fractions)), dtype=np.float64)
    out = []
    for version in _ordered_versions(results.versions):
        cube = regret_cube(results, version, fr, relative=True)
        done = cube.complete()
        runs = tuple(run for run, ok in zip(cube.runs, done, strict=True) if ok)
        sub = replace(cube, runs=runs, regret=cube.regret[:, done])
        _, reg_d = sub.dataset_means()
        for fi, f in enumerate(fr):
            scores = reg_d[:, :, fi].T  # (D, m)
            scores = scores[~np.isnan(scores).any(axis=1)]
            n, k = scores.shape
            row: dict = {"version": version, "fraction": float(f), "n_datasets": n, "n_methods": k}
            row.update(methods=list(cube.methods), avg_ranks=None, cd=float("nan"), statistic=float("nan"))
            row["pvalue"] = float("nan")
            if n >= 1 and k >= 2:
                row["avg_ranks"] = average_ranks(scores)
                row["cd"] = critical_difference(k, n, alpha)
            if n >= 2 and k >= 3:
                test = friedman_test(scores)
                row["statistic"], row["pvalue"] = test.statistic, test.pvalue
            out.append(row)
    return out


def make_figures(
    results_dir: str | Path | Sequence[str | Path],
    out: str | Path,
    fractions: Sequence[float] = (0.1, 0.5, 1.0),
    grid: str = "log",
    grid_points: int = 256,
    alpha: float = 0.05,
    formats: Sequence[str] = ("png", "pdf"),
    dpi: int = 150,
) -> list[Path]:
    """Writes every figure and table of a RESULTS directory (or several, merged) into ``out``; returns the paths."""
    dirs = [results_dir] if isinstance(results_dir, str | Path) else list(results_dir)
    results = load_results(dirs[0]) if len(dirs) == 1 else merge_results([load_results(d) for d in dirs])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    styles = method_styles(results.methods())
    written: list[Path] = []

    regret_panels, rank_panels = over_time_panels(results, grid, grid_points)
    log_x = grid == "log"
    fig = plot_over_time(regret_panels, styles, "Normalized regret (mean, 95 % CI)", log_x=log_x)
    written += save(fig, out / "regret_over_time", formats, dpi)
    if rank_panels:
        fig = plot_over_time(rank_panels, styles, "Average rank (1 = best; mean, 95 % CI)", log_x=log_x, rank=True)
        written += save(fig, out / "rank_over_time", formats, dpi)

    table = summary_table(results, fractions)
    table.write_csv(out / "summary.csv")
    (out / "summary.md").write_text(
        f"# Summary of {', '.join(str(d) for d in dirs)}\n\n"
        "Regret and rank: mean ± std [95 % CI half-width of the mean] over datasets (seeds averaged per "
        "dataset); best mean in bold.\n\n" + summary_markdown(table)
    )
    written += [out / "summary.csv", out / "summary.md"]

    rows = []
    for s in significance(results, fractions, alpha):
        pct = f"{100 * s['fraction']:g}"
        if s["avg_ranks"] is not None:
            p = "n/a" if np.isnan(s["pvalue"]) else f"{s['pvalue']:.3g}"
            title = (
                f"{s['version']}, {pct} % of the budget: {s['n_datasets']} datasets, "
                f"Friedman p = {p}, Nemenyi α = {alpha:g}"
            )
            fig = plot_cd_diagram(s["avg_ranks"], s["methods"], s["cd"], title, styles)
            written += save(fig, out / f"cd_{s['version']}_{pct.replace('.', 'p')}", formats, dpi)
        for i, m in enumerate(s["methods"]):
            rows.append(
                {k: s[k] for k in ("version", "fraction", "n_datasets", "n_methods", "statistic", "pvalue", "cd")}
                | {"method": m, "avg_rank": float(s["avg_ranks"][i]) if s["avg_ranks"] is not None else float("nan")}
            )
    pl.DataFrame(rows).write_csv(out / "friedman.csv")
    written.append(out / "friedman.csv")
    return written


@hydra.main(version_base="1.3", config_path=None, config_name="figures")
def _app(cfg: FiguresConfig) -> None:
    app_started()
    missing = missing_keys_message(cfg, ("results", "out"))
    if missing:
        fail(missing)
    c = OmegaConf.to_object(cfg)
    assert isinstance(c, FiguresConfig)
    try:
        dirs = [c.results, *c.extra_results]
        written = make_figures(dirs, c.out, c.fractions, c.grid, c.grid_points, c.alpha, c.formats, c.dpi)
    except (ResultsError, ValueError) as e:
        fail(f"benchmark.figures: {e}", BAD_INPUT)
    print(f"wrote {len(written)} files to {Path(c.out).resolve()}:")
    for p in written:
        print(f"  {p}")


def main() -> None:
    """Entry point: see the module docstring; exit codes as ``metagen.exit_codes`` (2: bad input)."""
    run_hydra(_app)


if __name__ == "__main__":
    main()
