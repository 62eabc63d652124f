"""The quality report of a store: does finetuning work on its datasets, and does the choice of model matter?

Per dataset (one ``version/dataset``): chance (1/K), the validation majority-class share and a pixel baseline
(logistic regression on raw pixels, :mod:`metagen.store.pixel_baseline`; needs the dataset folders), the best and
median final accuracy, the share of runs that end within 1.5x chance, the median final accuracy of pretrained and of
random-init runs, the Spearman correlation between epoch-5 and final accuracy, and the best model. Across datasets:
each model's rank per dataset and how many different models are best somewhere. Then the checks of issue 12, each
pass, fail or n/a (not evaluable on this store).

Definitions:

* final accuracy: validation top-1 of a run's last stored epoch (``card.load_runs``' ``final_top1``); best and
  median are over runs with a finite final accuracy;
* a run *ends within 1.5x chance* when its final accuracy is at most 1.5 / K, or it has none (diverged, or no
  epoch stored): it learned nothing usable;
* pretrained: ``pretrained_source`` recorded and not ``random-init``; runs that record none are in neither group;
* Spearman(epoch 5, final) over runs with at least 5 epochs and both accuracies finite (n/a under 3 such runs or
  when either side is constant);
* model ranks: per dataset, models ordered by their best final accuracy, ties broken by their median final
  accuracy, then by name; rank 1 is the dataset's best model.

Pure functions over the per-run frame of :func:`metagen.store.card.load_runs`; no torch, no timm.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from metagen.store.errors import StoreError
from metagen.store.pixel_baseline import BASELINE_SEED, METHOD, DatasetFacts, PixelBaseline, pixel_baselines

EARLY_EPOCH = 5
"""The early epoch whose accuracy is correlated with the final one."""
LOW_FACTOR = 1.5
"""A run whose final accuracy is at most this multiple of chance counts as one that did not learn."""
BEST_FACTOR = 3.0
"""Check: every dataset's best final accuracy is at least this multiple of chance."""
MAX_LOW_SHARE = 0.25
"""Check: at most this share of runs end within :data:`LOW_FACTOR` x chance."""
MIN_PRETRAINED_GAP = 0.1
"""Check: pretrained runs' median final accuracy exceeds random-init runs' by at least this much."""
MIN_BEST_MODELS = 3
"""Check: at least this many different models are best on some dataset."""
RANDOM_INIT = "random-init"
"""``pretrained_source`` of runs trained from random initialization."""
TOLERANCE = 1e-6
"""Accuracies are stored as float32: comparisons with thresholds allow this much rounding."""
NO_FOLDER = "n/a (no dataset folder)"
"""The pixel baseline and majority columns of a report made without dataset folders."""

REQUIRED_COLUMNS = (
    "run_id", "dataset_version", "dataset", "model", "n_epochs", "pretrained_source", "num_classes", "train_size",
    "resolution", "dataset_fingerprint", "final_top1", "epoch5_top1",
)  # fmt: skip
"""Columns of the per-run frame the report needs (``card.load_runs`` returns them)."""

Status = Literal["pass", "fail", "n/a"]


@dataclass(frozen=True)
class DatasetQuality:
    """The quality numbers of one dataset (accuracies are fractions; ``None``: not computable here)."""

    version: str
    dataset: str
    n_runs: int
    num_classes: int | None
    chance: float | None
    majority: float | None
    pixel: float | None
    best: float | None
    median: float | None
    n_finite: int
    low_share: float | None
    n_low: int | None
    pretrained_median: float | None
    random_median: float | None
    n_pretrained: int
    n_random: int
    spearman: float | None
    n_spearman: int
    best_model: str | None
    best_run: str | None


@dataclass(frozen=True)
class Check:
    """One requirement on the store and whether it holds."""

    name: str
    requirement: str
    status: Status
    detail: str


@dataclass(frozen=True)
class Overall:
    """Store-wide numbers (runs pooled over datasets)."""

    n_datasets: int
    n_runs: int
    low_share: float | None
    pretrained_median: float | None
    random_median: float | None
    n_pretrained: int
    n_random: int
    best_models: tuple[str, ...]


@dataclass(frozen=True)
class QualityReport:
    """The quality report of a store.

    Attributes:
        datasets: one entry per ``version/dataset``, sorted.
        ranks: one row per (version, dataset, model): ``best``, ``median`` final accuracy and ``rank`` (1 = best).
        models: one row per model: datasets ranked on, times best, mean / best / worst rank.
        overall: store-wide numbers.
        checks: the requirements of issue 12.
        baseline: how the pixel baseline was computed (``None``: no dataset folders given).
    """

    datasets: tuple[DatasetQuality, ...]
    ranks: pl.DataFrame
    models: pl.DataFrame
    overall: Overall
    checks: tuple[Check, ...]
    baseline: str | None = None
    folders: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[Check]:
        """The checks that fail."""
        return [c for c in self.checks if c.status == "fail"]

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (NaN and missing values as ``None``)."""
        return _clean(
            {
                "datasets": [asdict(d) for d in self.datasets],
                "ranks": self.ranks.to_dicts(),
                "models": self.models.to_dicts(),
                "overall": asdict(self.overall),
                "checks": [asdict(c) for c in self.checks],
                "passed": not self.failed,
                "pixel_baseline": self.baseline or NO_FOLDER,
                "dataset_folders": self.folders,
                "definitions": {
                    "final": "validation top-1 of the run's last stored epoch",
                    "low": f"final accuracy <= {LOW_FACTOR} x chance, or none (diverged, no epoch)",
                    "pretrained": f"pretrained_source recorded and not '{RANDOM_INIT}'",
                    "spearman": f"over runs with >= {EARLY_EPOCH} epochs, epoch-{EARLY_EPOCH} vs final accuracy",
                },
            }
        )


def _clean(value: Any) -> Any:
    """``value`` with non-finite floats replaced by ``None`` (JSON has no NaN), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# Computing
# --------------------------------------------------------------------------------------------


def dataset_facts(runs: pl.DataFrame) -> list[DatasetFacts]:
    """Per ``version/dataset``: the class count, train size, resolution and content fingerprint its runs recorded.

    Raises:
        StoreError: runs of one dataset recorded different values.
    """
    _check_columns(runs)
    columns = ("num_classes", "train_size", "resolution", "dataset_fingerprint")
    grouped = (
        runs.group_by("dataset_version", "dataset")
        .agg(pl.col(c).drop_nulls().unique().sort() for c in columns)
        .sort("dataset_version", "dataset")
    )
    out = []
    for row in grouped.iter_rows(named=True):
        for c in columns:
            if len(row[c]) > 1:
                raise StoreError(
                    f"runs of {row['dataset_version']}/{row['dataset']} recorded different {c}: {row[c]}; one "
                    "dataset has one value (were runs of two datasets stored under one name?)"
                )
        num_classes, train_size, resolution, fingerprint = (row[c][0] if row[c] else None for c in columns)
        out.append(
            DatasetFacts(row["dataset_version"], row["dataset"], num_classes, train_size, resolution, fingerprint)
        )
    return out


def _check_columns(runs: pl.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(f"the per-run frame lacks {missing}; build it with metagen.store.card.load_runs")


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def _median(values: np.ndarray) -> float | None:
    v = _finite(values)
    return float(np.median(v)) if v.size else None


def spearman(early: np.ndarray, final: np.ndarray) -> tuple[float | None, int]:
    """(Spearman's rho, pairs used) over the pairs where both are finite; rho ``None`` under 3 pairs or constant."""
    from scipy.stats import spearmanr

    ok = np.isfinite(early) & np.isfinite(final)
    a, b = early[ok], final[ok]
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None, int(a.size)
    return float(spearmanr(a, b).statistic), int(a.size)


def init_groups(runs: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(pretrained, random-init) boolean masks of the runs; runs that record no ``pretrained_source`` are in neither."""
    source = runs["pretrained_source"]
    random = (source == RANDOM_INIT).fill_null(False)
    return (source.is_not_null() & ~random).to_numpy(), random.to_numpy()


def dataset_quality(facts: DatasetFacts, runs: pl.DataFrame, baseline: PixelBaseline | None = None) -> DatasetQuality:
    """The quality numbers of one dataset from its rows of the per-run frame, sorted by run id.

    The best model is the model ranked first by :func:`model_ranks`; the best run is its best run.
    """
    final = runs["final_top1"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    early = runs["epoch5_top1"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    long_enough = runs["n_epochs"].to_numpy() >= EARLY_EPOCH
    pretrained, random = init_groups(runs)
    k = facts.num_classes if facts.num_classes is not None else (baseline.num_classes if baseline else None)
    chance = 1.0 / k if k else None
    n_low = None
    if chance is not None:
        n_low = int(np.sum(~np.isfinite(final) | (np.nan_to_num(final, nan=0.0) <= LOW_FACTOR * chance + TOLERANCE)))
    finite = np.isfinite(final)
    ranks = model_ranks(runs)
    best_model = str(ranks["model"][0]) if ranks.height else None
    best_i = None
    if best_model is not None:  # the best model's best run (ties: the first run id; rows are sorted by run id)
        of_model = finite & (runs["model"].to_numpy() == best_model)
        best_i = int(np.flatnonzero(of_model)[np.argmax(final[of_model])])
    rho, n_rho = spearman(early[long_enough], final[long_enough])
    return DatasetQuality(
        version=facts.version,
        dataset=facts.dataset,
        n_runs=runs.height,
        num_classes=k,
        chance=chance,
        majority=baseline.majority if baseline else None,
        pixel=baseline.accuracy if baseline else None,
        best=float(final[best_i]) if best_i is not None else None,
        median=_median(final),
        n_finite=int(finite.sum()),
        low_share=n_low / runs.height if n_low is not None and runs.height else None,
        n_low=n_low,
        pretrained_median=_median(final[pretrained]),
        random_median=_median(final[random]),
        n_pretrained=int(pretrained.sum()),
        n_random=int(random.sum()),
        spearman=rho,
        n_spearman=n_rho,
        best_model=best_model,
        best_run=str(runs["run_id"][best_i]) if best_i is not None else None,
    )


def model_ranks(runs: pl.DataFrame) -> pl.DataFrame:
    """Per (version, dataset, model) with a finite final accuracy: its ``best`` and ``median`` and its ``rank``.

    Rank 1 is the model with the highest best final accuracy on the dataset; ties go to the higher median, then to
    the name that sorts first.
    """
    final = pl.col("final_top1").cast(pl.Float64)
    per_model = (
        runs.filter(final.is_finite())
        .group_by("dataset_version", "dataset", "model")
        .agg(final.max().alias("best"), final.median().alias("median"))
        .sort(["dataset_version", "dataset", "best", "median", "model"], descending=[False, False, True, True, False])
    )
    rank = pl.int_range(1, pl.len() + 1).over("dataset_version", "dataset").cast(pl.Int64)
    return per_model.with_columns(rank.alias("rank"))


def model_summary(ranks: pl.DataFrame) -> pl.DataFrame:
    """Per model: datasets it was ranked on, times it was best (rank 1), mean, best and worst rank."""
    return (
        ranks.group_by("model")
        .agg(
            pl.len().alias("datasets"),
            (pl.col("rank") == 1).sum().cast(pl.Int64).alias("best_on"),
            pl.col("rank").mean().alias("mean_rank"),
            pl.col("rank").min().alias("best_rank"),
            pl.col("rank").max().alias("worst_rank"),
        )
        .sort(["best_on", "mean_rank", "model"], descending=[True, False, False])
    )


def overall(datasets: Sequence[DatasetQuality], runs: pl.DataFrame) -> Overall:
    """Store-wide numbers: runs pooled over datasets for the low share and the pretrained / random-init medians."""
    known = [d for d in datasets if d.n_low is not None]
    n_known = sum(d.n_runs for d in known)
    values = runs["final_top1"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    pretrained, random = init_groups(runs)
    return Overall(
        n_datasets=len(datasets),
        n_runs=runs.height,
        low_share=sum(d.n_low or 0 for d in known) / n_known if n_known else None,
        pretrained_median=_median(values[pretrained]),
        random_median=_median(values[random]),
        n_pretrained=int(pretrained.sum()),
        n_random=int(random.sum()),
        best_models=tuple(sorted({d.best_model for d in datasets if d.best_model is not None})),
    )


def _label(d: DatasetQuality) -> str:
    return f"{d.version}/{d.dataset}"


def _listing(items: Sequence[str], limit: int = 8) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def checks(datasets: Sequence[DatasetQuality], summary: Overall, with_baseline: bool) -> tuple[Check, ...]:
    """The requirements of issue 12 on a store, each pass, fail or n/a."""
    out = []

    known = [d for d in datasets if d.chance is not None]
    low = [f"{_label(d)} ({_acc(d.best)} < {BEST_FACTOR:g} x {_acc(d.chance)})" for d in known
           if d.best is None or d.best < BEST_FACTOR * (d.chance or 0.0) - TOLERANCE]  # fmt: skip
    unknown = [_label(d) for d in datasets if d.chance is None]
    note = f"; class count not recorded for {_listing(unknown)}" if unknown else ""
    out.append(
        Check(
            "best_vs_chance",
            f"on every dataset the best final accuracy is at least {BEST_FACTOR:g}x chance",
            "n/a" if not known else ("fail" if low else "pass"),
            (f"fails on {len(low)} of {len(known)}: {_listing(low)}" if low else f"holds on all {len(known)}") + note,
        )
    )

    if not with_baseline:
        out.append(
            Check(
                "best_vs_pixel",
                "on every dataset the best final accuracy beats the pixel baseline",
                "n/a",
                "no dataset folders given (--datasets DIR)",
            )
        )
    else:
        beaten = [f"{_label(d)} ({_acc(d.best)} <= {_acc(d.pixel)})" for d in datasets
                  if d.pixel is not None and (d.best is None or d.best <= d.pixel + TOLERANCE)]  # fmt: skip
        out.append(
            Check(
                "best_vs_pixel",
                "on every dataset the best final accuracy beats the pixel baseline",
                "fail" if beaten else "pass",
                f"fails on {len(beaten)} of {len(datasets)}: {_listing(beaten)}"
                if beaten
                else f"holds on all {len(datasets)}",
            )
        )

    share = summary.low_share
    out.append(
        Check(
            "low_runs",
            f"at most {MAX_LOW_SHARE:.0%} of runs end within {LOW_FACTOR:g}x chance",
            "n/a" if share is None else ("pass" if share <= MAX_LOW_SHARE + TOLERANCE else "fail"),
            "class counts not recorded" if share is None else f"{share:.1%} of runs do",
        )
    )

    pre, rnd = summary.pretrained_median, summary.random_median
    if summary.n_random == 0 or summary.n_pretrained == 0:
        status: Status = "n/a"
        detail = f"{summary.n_pretrained} pretrained and {summary.n_random} random-init runs: nothing to compare"
    elif pre is None or rnd is None:
        status, detail = "fail", "one group has no finite final accuracy"
    else:
        gap = pre - rnd
        status = "pass" if gap >= MIN_PRETRAINED_GAP - TOLERANCE else "fail"
        detail = (
            f"median {pre:.3f} ({summary.n_pretrained} pretrained runs) - {rnd:.3f} ({summary.n_random} random-init "
            f"runs) = {gap:+.3f}"
        )
    out.append(
        Check(
            "pretrained_gap",
            f"pretrained runs beat random-init runs on median final accuracy by at least {MIN_PRETRAINED_GAP:g} "
            "(if any are random-init)",
            status,
            detail,
        )
    )

    best = summary.best_models
    out.append(
        Check(
            "best_models",
            f"at least {MIN_BEST_MODELS} different models are best on some dataset",
            "pass" if len(best) >= MIN_BEST_MODELS else "fail",
            f"{len(best)}: {_listing(best) or 'none'}",
        )
    )
    return tuple(out)


def quality_report(
    runs: pl.DataFrame,
    baselines: Mapping[tuple[str, str], PixelBaseline] | None = None,
    baseline_method: str | None = None,
) -> QualityReport:
    """The quality report of a store's per-run frame (:func:`metagen.store.card.load_runs`).

    Args:
        runs: one row per run with :data:`REQUIRED_COLUMNS`.
        baselines: (version, dataset) -> pixel baseline, for every dataset; ``None`` when no folders were given.
        baseline_method: how the baselines were computed, for the report.
    """
    facts = dataset_facts(runs)
    parts = runs.sort("run_id").partition_by("dataset_version", "dataset", as_dict=True)
    datasets = tuple(
        dataset_quality(f, parts[(f.version, f.dataset)], (baselines or {}).get((f.version, f.dataset))) for f in facts
    )
    ranks = model_ranks(runs)
    summary = overall(datasets, runs)
    folders = {f"{v}/{d}": str(b.path) for (v, d), b in (baselines or {}).items()}
    return QualityReport(
        datasets=datasets,
        ranks=ranks,
        models=model_summary(ranks),
        overall=summary,
        checks=checks(datasets, summary, baselines is not None),
        baseline=baseline_method if baselines is not None else None,
        folders=folders,
    )


def store_quality(
    runs: pl.DataFrame, dataset_dirs: Sequence[str | Path] | None = None, seed: int = BASELINE_SEED
) -> QualityReport:
    """:func:`quality_report` with pixel baselines computed from ``dataset_dirs`` (none when not given)."""
    if not dataset_dirs:
        return quality_report(runs)
    baselines = pixel_baselines(dataset_facts(runs), dataset_dirs, seed)
    return quality_report(runs, baselines, METHOD)


# --------------------------------------------------------------------------------------------
# Tables (shared by the CLI's text and the data card)
# --------------------------------------------------------------------------------------------


def _acc(value: float | None) -> str:
    """An accuracy with three decimals, ``—`` when missing."""
    return "—" if value is None or not math.isfinite(value) else f"{value:.3f}"


DATASET_HEADERS = [
    "version", "dataset", "K", "chance", "majority (val)", "pixel LR", "best", "median", "≤1.5x chance",
    "pretrained med.", "random-init med.", "Spearman e5/final", "best model",
]  # fmt: skip


def dataset_rows(report: QualityReport) -> list[list[str]]:
    """Rows of the per-dataset table (cells formatted), aligned with :data:`DATASET_HEADERS`."""
    rows = []
    for d in report.datasets:
        no_folder = report.baseline is None
        low = "—" if d.low_share is None else f"{d.low_share:.0%} ({d.n_low}/{d.n_runs})"
        rho = "—" if d.spearman is None else f"{d.spearman:.2f} (n={d.n_spearman})"
        rows.append(
            [
                d.version,
                d.dataset,
                "—" if d.num_classes is None else str(d.num_classes),
                _acc(d.chance),
                NO_FOLDER if no_folder else _acc(d.majority),
                NO_FOLDER if no_folder else _acc(d.pixel),
                _acc(d.best),
                _acc(d.median),
                low,
                _acc(d.pretrained_median) + (f" (n={d.n_pretrained})" if d.n_pretrained else ""),
                _acc(d.random_median) + (f" (n={d.n_random})" if d.n_random else ""),
                rho,
                d.best_model or "—",
            ]
        )
    return rows


def rank_matrix(report: QualityReport) -> tuple[list[str], list[list[str]]]:
    """(headers, rows): one row per model (most often best first), one column per dataset, cells its rank."""
    labels = [f"{d.version}/{d.dataset}" if len({x.version for x in report.datasets}) > 1 else d.dataset
              for d in report.datasets]  # fmt: skip
    keys = [(d.version, d.dataset) for d in report.datasets]
    cell = {(v, d, m): r for v, d, m, r in report.ranks.select("dataset_version", "dataset", "model", "rank").rows()}
    rows = []
    for m in report.models["model"].to_list():
        ranks = [cell.get((v, d, m)) for v, d in keys]
        rows.append([m, *("—" if r is None else str(r) for r in ranks)])
    return ["model", *labels], rows


MODEL_HEADERS = ["model", "datasets", "best on", "mean rank", "best rank", "worst rank"]


def model_rows(report: QualityReport) -> list[list[str]]:
    """Rows of the per-model rank summary, aligned with :data:`MODEL_HEADERS`."""
    return [
        [m, str(n), str(b), f"{mean:.2f}", str(lo), str(hi)]
        for m, n, b, mean, lo, hi in report.models.select(
            "model", "datasets", "best_on", "mean_rank", "best_rank", "worst_rank"
        ).rows()
    ]


def _text_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    return [line, "  ".join("-" * w for w in widths)] + [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows
    ]


def format_text(report: QualityReport, name: str, max_rank_columns: int = 20) -> str:
    """The report as plain text: dataset table, model ranks, checks."""
    o = report.overall
    lines = [
        f"quality of {name}: {o.n_datasets} datasets, {o.n_runs} runs; final = validation top-1 of a run's last "
        "stored epoch; best / median over runs with a finite final accuracy",
        "",
        *_text_table(DATASET_HEADERS, dataset_rows(report)),
        "",
        f"pixel LR: {report.baseline or NO_FOLDER}",
        "",
        "model ranks (1 = best final accuracy on the dataset; ties by median):",
        *_text_table(MODEL_HEADERS, model_rows(report)),
    ]
    if len(report.datasets) <= max_rank_columns:
        lines += ["", *_text_table(*rank_matrix(report))]
    lines += ["", f"checks ({'all pass' if not report.failed else f'{len(report.failed)} fail'}):"]
    lines += [f"  {c.status.upper():<4}  {c.requirement}: {c.detail}" for c in report.checks]
    return "\n".join(lines) + "\n"
