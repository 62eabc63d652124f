"""Metrics of a benchmark run: normalized regret, trajectories on a time grid, ranks, confidence intervals, tables.

Everything here is a pure function of arrays or of a RESULTS directory read by :func:`benchmark.results.load_results`
(the one owner of the layout, ``docs/metrics.md``). Imports neither torch nor matplotlib.

Conventions (the paper's, reference §6.1, deviations in ``docs/metrics.md``):

* normalized regret ``(best - incumbent) / (best - worst)``, 1.0 before the first observation;
* trajectories are step functions of simulated time: an event finishing at ``t`` counts from ``t`` on;
* ranks are taken per (dataset, seed, time) among the methods, lower regret = better, ties share the average rank;
* 95 % confidence half-width of a mean ``t(0.975, n - 1) * std / sqrt(n)`` (Student t, ``std`` with ``ddof=1``),
  undefined (``nan``) for fewer than 2 samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.stats import rankdata
from scipy.stats import t as student_t

from benchmark.regret import normalized_regret as normalized_regret  # re-exported: part of the metrics API
from benchmark.results import Results, ResultsError

CONFIDENCE = 0.95


# ---- regret and trajectories ---------------------------------------------------------------------------------------


def incumbent_trajectory(values: np.ndarray) -> np.ndarray:
    """Best value so far of a sequence of observations, ignoring ``nan`` (diverged epochs).

    Args:
        values: ``(n,)`` accuracies in event order, ``nan`` for diverged epochs.

    Returns:
        ``(n,)`` running maximum; ``nan`` up to the first finite value.
    """
    v = np.asarray(values, dtype=np.float64)
    return np.fmax.accumulate(v) if v.size else v.copy()


def time_grid(budget_s: float, kind: str = "log", n: int = 256, start_s: float | None = None) -> np.ndarray:
    """Common time grid of a budget, in seconds.

    Args:
        budget_s: the time budget; the grid ends exactly at it.
        kind: ``"log"`` (``n`` points spaced evenly in log time from ``start_s``), ``"linear"`` (``n`` points from
            ``start_s``, default 0) or ``"second"`` (the paper's 1-s grid ``0, 1, ..., floor(budget_s)``).
        n: number of points for ``log`` and ``linear``.
        start_s: first point; default ``budget_s / 1000`` for ``log`` (at least 1 s when the budget allows), 0 for
            ``linear``.

    Returns:
        ``(T,)`` increasing float64 times.
    """
    if not np.isfinite(budget_s) or budget_s <= 0:
        raise ValueError(f"time_grid needs a positive budget, got {budget_s}")
    if kind == "second":
        return np.arange(0.0, np.floor(budget_s) + 1.0)
    if n < 2:
        raise ValueError(f"time_grid needs n >= 2 points, got {n}")
    if kind == "log":
        start = start_s if start_s is not None else min(max(budget_s / 1000.0, 1.0), budget_s / 10.0)
        if not 0 < start < budget_s:
            raise ValueError(f"log grid needs 0 < start_s < budget_s, got start_s={start}, budget_s={budget_s}")
        return np.geomspace(start, budget_s, n)
    if kind == "linear":
        return np.linspace(0.0 if start_s is None else start_s, budget_s, n)
    raise ValueError(f"unknown grid kind {kind!r}; choose 'log', 'linear' or 'second'")


def step_on_grid(times: np.ndarray, values: np.ndarray, grid: np.ndarray, before: float = 1.0) -> np.ndarray:
    """A step function given at event times, read on a grid.

    Args:
        times: ``(n,)`` non-decreasing event times (seconds).
        values: ``(n,)`` the function's value from each event on.
        grid: ``(T,)`` times to read it at.
        before: value before the first event (1.0 for regret, ``nan`` for accuracy).

    Returns:
        ``(T,)`` the value of the last event with ``time <= grid[j]``, or ``before``.
    """
    t = np.asarray(times, dtype=np.float64)
    if t.size > 1 and np.any(np.diff(t) < 0):
        raise ValueError("step_on_grid needs non-decreasing event times")
    idx = np.searchsorted(t, np.asarray(grid, dtype=np.float64), side="right") - 1
    out = np.asarray(values, dtype=np.float64)[np.maximum(idx, 0)] if t.size else np.empty(len(grid))
    return np.where(idx < 0, before, out)


# ---- trajectories on a grid, ranks, intervals ------------------------------------------------------------------------


@dataclass(frozen=True)
class RegretCube:
    """Regret trajectories of one version's methods on a common grid.

    Attributes:
        version: the meta-dataset version.
        methods: ``(m,)`` method names.
        runs: ``(r,)`` (dataset, seed) pairs.
        grid: ``(T,)`` seconds, or fractions of each run's budget when ``relative``.
        relative: whether ``grid`` is in fractions of the budget.
        regret: ``(m, r, T)`` normalized regret; ``nan`` where a method has no result for a run.
    """

    version: str
    methods: tuple[str, ...]
    runs: tuple[tuple[str, int], ...]
    grid: np.ndarray
    relative: bool
    regret: np.ndarray

    @property
    def datasets(self) -> tuple[str, ...]:
        """Datasets of the runs, sorted, each once."""
        return tuple(sorted({d for d, _ in self.runs}))

    def complete(self) -> np.ndarray:
        """``(r,)`` bool: runs every method has a result for (ranks are only defined there)."""
        return ~np.isnan(self.regret).any(axis=(0, 2))

    def dataset_means(self, values: np.ndarray | None = None) -> tuple[tuple[str, ...], np.ndarray]:
        """Per dataset, the mean over its seeds (``nan``-aware) of ``values`` (default: the regret).

        Args:
            values: ``(m, r, T)`` per-run values (e.g. ranks from :func:`ranks`).

        Returns:
            The datasets ``(D,)`` and ``(m, D, T)`` means.
        """
        v = self.regret if values is None else values
        datasets = self.datasets
        out = np.full((v.shape[0], len(datasets), v.shape[2]), np.nan)
        names = np.array([d for d, _ in self.runs])
        for j, d in enumerate(datasets):
            block = v[:, names == d]
            counts = (~np.isnan(block)).sum(axis=1)
            out[:, j] = np.where(counts > 0, np.nansum(block, axis=1) / np.maximum(counts, 1), np.nan)
        return datasets, out


def regret_cube(
    results: Results,
    version: str,
    grid: np.ndarray,
    relative: bool = False,
    methods: Sequence[str] | None = None,
) -> RegretCube:
    """Every (method, dataset, seed) regret trajectory of a version read on a common grid.

    Args:
        results: the loaded RESULTS.
        version: which version.
        grid: ``(T,)`` seconds, or fractions of each run's ``budget_s`` when ``relative``.
        relative: read ``grid`` as fractions of each run's budget (for tables at 10/50/100 % of the budget).
        methods: restrict to (and order by) these methods; default all of the version's, sorted.

    Returns:
        The cube; a run with a result file but no event before the budget has regret 1 throughout.
    """
    if version not in results.versions:
        raise ResultsError(f"{results.root}: no results of version '{version}'; available: {results.versions}")
    methods = tuple(methods) if methods is not None else tuple(results.methods(version))
    unknown = sorted(set(methods) - set(results.methods(version)))
    if unknown:
        raise ResultsError(f"{results.root}: no results of methods {unknown} in version '{version}'")
    runs_v = results.runs.filter(pl.col("version") == version)
    run_keys = tuple(sorted({(d, int(s)) for d, s in runs_v.select("dataset", "seed").iter_rows()}))
    run_index = {k: i for i, k in enumerate(run_keys)}
    method_index = {m: i for i, m in enumerate(methods)}
    grid = np.asarray(grid, dtype=np.float64)
    out = np.full((len(methods), len(run_keys), grid.size), np.nan)
    for m, d, s in runs_v.select("method", "dataset", "seed").iter_rows():
        if m in method_index:
            out[method_index[m], run_index[(d, int(s))]] = 1.0  # file present: regret 1 until its first event
    events = results.events.filter((pl.col("version") == version) & pl.col("method").is_in(methods))
    budget_default = results.budget_s(version) if relative else 1.0
    for (m, d, s), g in events.group_by("method", "dataset", "seed", maintain_order=True):
        times = g["time"].to_numpy()
        budget = float(g["budget_s"].max() or budget_default)  # type: ignore[arg-type]
        at = grid * budget if relative else grid
        out[method_index[str(m)], run_index[(str(d), int(s))]] = step_on_grid(times, g["regret"].to_numpy(), at)
    return RegretCube(version, methods, run_keys, grid, relative, out)


def ranks(regret: np.ndarray) -> np.ndarray:
    """Rank of each method per run and time step; lower regret = rank 1; ties share their average rank.

    Args:
        regret: ``(m, r, T)`` regret, no ``nan`` (select complete runs first, see :meth:`RegretCube.complete`).

    Returns:
        ``(m, r, T)`` ranks in ``[1, m]``.
    """
    regret = np.asarray(regret, dtype=np.float64)
    if np.isnan(regret).any():
        raise ValueError("ranks need a result of every method for every run; drop incomplete runs first")
    return rankdata(regret, axis=0, method="average")


def mean_ci(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 95 % Student-t confidence half-width ``t(0.975, n - 1) * std / sqrt(n)`` (``ddof=1``), ignoring ``nan``.

    Args:
        values: samples along ``axis`` (e.g. ``(r, T)`` regret of the runs).

    Returns:
        ``mean`` and ``half_width``, the shape of ``values`` without ``axis``; the mean is ``nan`` where there is no
        sample, the half-width where there are fewer than 2.
    """
    v = np.asarray(values, dtype=np.float64)
    n = (~np.isnan(v)).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        safe = np.where(np.isnan(v), 0.0, v)
        mean = np.where(n > 0, safe.sum(axis=axis) / np.maximum(n, 1), np.nan)
        sq = np.where(np.isnan(v), 0.0, (v - np.expand_dims(mean, axis)) ** 2).sum(axis=axis)
        std = np.sqrt(sq / np.maximum(n - 1, 1))
        quantile = student_t.ppf(0.5 + CONFIDENCE / 2, np.maximum(n - 1, 1))
        half = np.where(n > 1, quantile * std / np.sqrt(np.maximum(n, 1)), np.nan)
    return mean, half


# ---- summary tables ------------------------------------------------------------------------------------------------


def summary_table(results: Results, fractions: Sequence[float] = (0.1, 0.5, 1.0)) -> pl.DataFrame:
    """Regret and rank per version, method and budget fraction, as the paper's Table 2 reports them.

    Per dataset the values are averaged over seeds; ``mean``/``std`` (``ddof=1``) are then taken over datasets.
    Ranks are computed per (dataset, seed) among the version's methods on runs every method has.

    Returns:
        One row per (version, fraction, method): ``time_s`` (the largest budget times the fraction),
        ``regret_mean, regret_std, regret_ci95, rank_mean, rank_std, rank_ci95, n_datasets, n_runs`` (runs
        the method has) and ``n_ranked_runs`` (complete runs used for ranks); ``*_ci95`` is the 95 %
        Student-t confidence half-width ``t(0.975, n_datasets - 1) * std / sqrt(n_datasets)`` of the mean over datasets
        (:func:`mean_ci`; ``nan`` with fewer than 2 datasets).
    """
    fr = np.asarray(sorted(set(fractions)), dtype=np.float64)
    if fr.size == 0 or np.any((fr <= 0) | (fr > 1)):
        raise ValueError(f"budget fractions must lie in (0, 1], got {list(fractions)}")
    rows = []
    counts = {(r["version"], r["method"]): r for r in proposal_counts(results).iter_rows(named=True)}
    for version in results.versions:
        cube = regret_cube(results, version, fr, relative=True)
        _, reg_d = cube.dataset_means()
        done = cube.complete()
        rank_d = np.full_like(reg_d, np.nan)
        if done.any():
            rk = np.full_like(cube.regret, np.nan)
            rk[:, done] = ranks(cube.regret[:, done])
            _, rank_d = cube.dataset_means(rk)
        budget = results.budget_s(version)
        for mi, method in enumerate(cube.methods):
            n_runs = int((~np.isnan(cube.regret[mi, :, 0])).sum())
            for fi, f in enumerate(fr):
                reg = reg_d[mi, :, fi][~np.isnan(reg_d[mi, :, fi])]
                rk = rank_d[mi, :, fi][~np.isnan(rank_d[mi, :, fi])]
                (reg_ci, rk_ci) = (float(mean_ci(v)[1]) if v.size else float("nan") for v in (reg, rk))
                (reg_sd, rk_sd) = (float(v.std(ddof=1)) if v.size > 1 else float("nan") for v in (reg, rk))
                rows.append(
                    {
                        "version": version,
                        "fraction": float(f),
                        "time_s": float(f * budget),
                        "method": method,
                        "regret_mean": float(reg.mean()) if reg.size else float("nan"),
                        "regret_std": reg_sd,
                        "regret_ci95": reg_ci,
                        "rank_mean": float(rk.mean()) if rk.size else float("nan"),
                        "rank_std": rk_sd,
                        "rank_ci95": rk_ci,
                        "n_datasets": len(reg),
                        "n_runs": n_runs,
                        "n_ranked_runs": int(done.sum()),
                        "model_proposals": counts.get((version, method), {}).get("model_proposals"),
                        "proposals": counts.get((version, method), {}).get("proposals"),
                    }
                )
    return pl.DataFrame(rows, schema_overrides={"model_proposals": pl.Int64(), "proposals": pl.Int64()})


def proposal_counts(results: Results) -> pl.DataFrame:
    """How many new candidates of each method came from its model, per version, summed over its replays.

    Returns:
        One row per (version, method) whose cells carry ``model_proposals`` (BOHB): ``model_proposals``,
        ``proposals`` (model and random) and ``n_replays``; empty for results without such counts.
    """
    keys = ["version", "method"]
    stats = results.stats.filter(pl.col("stat").is_in(["model_proposals", "proposals"]))
    if stats.is_empty():
        return pl.DataFrame(schema={**{k: pl.String() for k in keys}, "model_proposals": pl.Int64(),
                                    "proposals": pl.Int64(), "n_replays": pl.UInt32()})  # fmt: skip
    wide = stats.pivot("stat", index=[*keys, "dataset", "seed"], values="count", aggregate_function="sum")
    return (
        wide.group_by(keys)
        .agg(pl.col("model_proposals").sum(), pl.col("proposals").sum(), pl.len().alias("n_replays"))
        .sort(keys)
    )


def proposal_notes(results: Results) -> list[str]:
    """One line per (version, method) with model proposals, e.g. ``bohb (micro): model proposals 0 of 412 ...``,
    and one per method that maps proposals onto candidates (DEHB: how many were candidates already known)."""
    lines = mapping_notes(results)
    for r in proposal_counts(results).iter_rows(named=True):
        share = f" ({100 * r['model_proposals'] / r['proposals']:.0f} %)" if r["proposals"] else ""
        never = " (no model was ever fitted: every proposal was random)"
        lines.append(
            f"{r['method']} ({r['version']}): model proposals {r['model_proposals']} of {r['proposals']}{share} "
            f"over {r['n_replays']} replays; the others were drawn at random"
            + (never if not r["model_proposals"] else "")
        )
    return lines


MAPPING_STATS = ("mapped_proposals", "known_proposals", "distinct_candidates")
"""Counters of a method that maps its proposals onto candidates (DEHB, ``benchmark.methods.dehb_tabular``)."""


def mapping_notes(results: Results) -> list[str]:
    """One line per (version, method) whose cells count mapped proposals (DEHB), summed over its replays."""
    keys = ["version", "method"]
    stats = results.stats.filter(pl.col("stat").is_in(MAPPING_STATS))
    if stats.is_empty():
        return []
    wide = stats.pivot("stat", index=[*keys, "dataset", "seed"], values="count", aggregate_function="sum")
    sums = wide.group_by(keys).agg(*(pl.col(c).sum() for c in MAPPING_STATS), pl.len().alias("n")).sort(keys)
    lines = []
    for r in sums.iter_rows(named=True):
        share = f" ({100 * r['known_proposals'] / r['mapped_proposals']:.0f} %)" if r["mapped_proposals"] else ""
        lines.append(
            f"{r['method']} ({r['version']}): {r['mapped_proposals']} proposals mapped onto candidates over {r['n']} "
            f"replays ({r['distinct_candidates'] / r['n']:.1f} distinct candidates per replay); "
            f"{r['known_proposals']}{share} mapped "
            "to a candidate already known at their fidelity and were answered without training"
        )
    return lines


def summary_markdown(table: pl.DataFrame, digits: int = 3) -> str:
    """The paper's table layout in markdown: one table per budget fraction, methods as rows, a regret and a rank
    column per version; cells ``mean ± std [95 % CI half-width]``, the best mean of each column in bold."""
    versions = _ordered_versions(table["version"].unique().to_list())
    methods = sorted(table["method"].unique().to_list())
    lines: list[str] = []
    for f in sorted(table["fraction"].unique().to_list()):
        sub = table.filter(pl.col("fraction") == f)
        cols = [("regret", v) for v in versions] + [("rank", v) for v in versions]
        best = {}
        for metric, v in cols:
            means = sub.filter(pl.col("version") == v)[f"{metric}_mean"].drop_nans()
            best[(metric, v)] = means.min() if len(means) else None
        lines.append(f"### {100 * f:g} % of the budget\n")
        lines.append("| method | " + " | ".join(f"{m} {v}" for m, v in cols) + " |")
        lines.append("|---|" + "---|" * len(cols))
        for method in methods:
            cells = []
            for metric, v in cols:
                row = sub.filter((pl.col("version") == v) & (pl.col("method") == method))
                if row.height == 0 or np.isnan(row[f"{metric}_mean"][0]):
                    cells.append("–")
                    continue
                mean, std, ci = (row[f"{metric}_{k}"][0] for k in ("mean", "std", "ci95"))
                cell = f"{mean:.{digits}f} ± {_num(std, digits)} [±{_num(ci, digits)}]"
                cells.append(f"**{cell}**" if best[(metric, v)] is not None and mean == best[(metric, v)] else cell)
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _num(x: float, digits: int) -> str:
    """``x`` with ``digits`` decimals, ``n/a`` for ``nan`` (a spread of a single dataset)."""
    return "n/a" if np.isnan(x) else f"{x:.{digits}f}"


_VERSION_ORDER = {"micro": 0, "mini": 1, "extended": 2}


def _ordered_versions(versions: Sequence[str]) -> list[str]:
    """The paper's versions in size order, any other version after them alphabetically."""
    return sorted(versions, key=lambda v: (_VERSION_ORDER.get(v, 99), v))
