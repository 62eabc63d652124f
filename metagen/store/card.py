"""The data card of a store: a markdown summary with figures that a researcher can read.

``write_card(store, out_dir)`` writes ``out_dir/<name>.md`` and its figures under
``out_dir/<name>/``. The store is read once, lazily: the runs table and a per-run aggregate of the
curves table (compute seconds, last-epoch accuracy) are collected into one small frame with one
row per run, and every number of the card is a polars aggregation of that frame. Its Quality
section is :mod:`metagen.store.quality`'s report of that frame (with the pixel baseline when
``write_card`` is given the dataset folders).
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from metagen.store.card_figures import runs_by, write_figures
from metagen.store.layout import StoreMetadata
from metagen.store.quality import (
    DATASET_HEADERS,
    EARLY_EPOCH,
    LOW_FACTOR,
    MODEL_HEADERS,
    NO_FOLDER,
    RANDOM_INIT,
    QualityReport,
    dataset_rows,
    model_rows,
    quality_report,
    rank_matrix,
    store_quality,
)
from metagen.store.reader import StoreReader
from metagen.store.schema import ACCURACY_UNIT, STATUSES, TIME_UNIT

MAX_TABLE_ROWS = 30
"""Longer tables are cut to their top rows (the figures show everything)."""
MAX_VALUES = 10
"""Distinct values listed per provenance column."""
MAX_RANK_COLUMNS = 15
"""The model-rank matrix is shown when the store has at most this many datasets."""

_RUN_COLUMNS = (
    "run_id",
    "dataset_version",
    "dataset",
    "model",
    "pipeline_id",
    "n_epochs",
    "status",
    "source",
    "pretrained_source",
    "hardware",
    "package_versions",
    "train_size",
    "num_classes",
    "resolution",
    "channels",
    "dataset_fingerprint",
)
_META_FEATURES = ("train_size", "num_classes", "resolution", "channels")


def write_card(store: str | Path, out_dir: str | Path, datasets: Sequence[str | Path] | None = None) -> Path:
    """Write the data card of a store and its figures.

    Args:
        store: the store directory.
        out_dir: where to write ``<name>.md`` and the figure folder ``<name>/``.
        datasets: folders holding the store's dataset folders, for the pixel baseline of the Quality
            section (``None``: the baseline column says n/a).

    Returns:
        The path of the markdown file.
    """
    reader = StoreReader(store, check=False)
    runs = load_runs(reader)
    quality = store_quality(runs, datasets) if runs.height else None
    name = safe_name(reader.metadata.name)
    out = Path(out_dir)
    fig_dir = out / name
    fig_dir.mkdir(parents=True, exist_ok=True)
    figures = {k: f"{name}/{p.name}" for k, p in write_figures(runs, fig_dir, quality).items()}
    path = out / f"{name}.md"
    path.write_text(render_card(reader.metadata, runs, figures, quality))
    return path


def safe_name(name: str) -> str:
    """The store's name made file-name safe (letters, digits, ``.``, ``_``, ``-``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-") or "store"


def load_runs(reader: StoreReader) -> pl.DataFrame:
    """One row per run: the run columns the card needs plus ``compute_s``, ``final_top1`` and ``epoch5_top1``.

    ``compute_s`` is the sum of ``train_time + eval_time`` over the run's epochs (seconds);
    ``final_top1`` is the validation top-1 of its last epoch (NaN or null when it has none);
    ``epoch5_top1`` that of epoch 5 (null when the run is shorter).
    """
    per_run = (
        reader.scan_curves()
        .group_by("run_id")
        .agg(
            (pl.col("train_time").cast(pl.Float64) + pl.col("eval_time").cast(pl.Float64)).sum().alias("compute_s"),
            pl.col("eval_top1").cast(pl.Float64).sort_by("epoch").last().alias("final_top1"),
            pl.col("eval_top1").cast(pl.Float64).filter(pl.col("epoch") == EARLY_EPOCH).first().alias("epoch5_top1"),
        )
    )
    return (
        reader.scan_runs()
        .select(_RUN_COLUMNS)
        .join(per_run, on="run_id", how="left")
        .with_columns(pl.col("compute_s").fill_null(0.0))
        .sort("dataset_version", "dataset", "run_id")
        .collect()
    )


def _fmt(value: object) -> str:
    """A table cell: thousands separators for integers, 4 significant digits for floats, ``—`` for missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, bool | str):
        return str(value).replace("|", "\\|")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def _accuracy(value: float | None) -> str:
    """An accuracy (a fraction) with three decimals, ``—`` when missing."""
    return "—" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _table(headers: list[str], rows: list[list[object]], left: int = 1) -> list[str]:
    """A markdown table; the first ``left`` (label) columns left-aligned, the others right-aligned."""
    align = [":---"] * left + ["---:"] * (len(headers) - left)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def _cut(df: pl.DataFrame, what: str) -> tuple[pl.DataFrame, list[str]]:
    """The first :data:`MAX_TABLE_ROWS` rows and a note saying how many were left out."""
    if df.height <= MAX_TABLE_ROWS:
        return df, []
    return df.head(MAX_TABLE_ROWS), [f"*Top {MAX_TABLE_ROWS} of {df.height:,} {what}; see the figure.*", ""]


def _figure(figures: dict[str, str], key: str, alt: str) -> list[str]:
    """A markdown image line for a figure that was drawn (nothing otherwise)."""
    return [f"![{alt}]({figures[key]})", ""] if key in figures else []


def render_card(
    metadata: StoreMetadata, runs: pl.DataFrame, figures: dict[str, str], quality: QualityReport | None = None
) -> str:
    """The card's markdown text.

    Args:
        metadata: the store's metadata.
        runs: one row per run, as :func:`load_runs` returns it.
        figures: figure key -> path relative to the markdown file.
        quality: the store's quality report (computed from ``runs`` without pixel baselines when ``None``).

    Returns:
        The markdown text.
    """
    if runs.height == 0:
        body = ["## Contents", "", "The store holds no runs yet.", ""]
    else:
        body = [
            *_sizes_section(runs),
            *_status_section(runs),
            *_compute_section(runs, metadata.synthetic),
            *_curves_section(runs, figures),
            *_quality_section(quality if quality is not None else quality_report(runs), figures),
            *_models_section(runs, figures),
            *_datasets_section(runs, figures),
            *_meta_feature_section(runs),
        ]
    lines = [*_header(metadata), *body, *_provenance_section(metadata, runs), *_deviations_section(metadata)]
    lines += ["---", "", f"Units: accuracies are a {ACCURACY_UNIT}; times are in {TIME_UNIT}.", ""]
    return "\n".join(lines)


def _header(metadata: StoreMetadata) -> list[str]:
    """Title, synthetic warning and description."""
    lines = [f"# Data card: {metadata.name}" + (" (SYNTHETIC)" if metadata.synthetic else ""), ""]
    if metadata.synthetic:
        lines += [
            "> [!WARNING]",
            "> **SYNTHETIC DATA: for scale and performance work only; not measured.**",
            "> No number in this store comes from training a model. Do not use it for research results.",
            "",
        ]
    lines += [metadata.description.strip() or "*No description recorded.*", ""]
    return lines


def _sizes_section(runs: pl.DataFrame) -> list[str]:
    """Datasets, runs, epochs, pipelines and mean curve length per version and in total."""
    aggs = [
        pl.struct("dataset_version", "dataset").n_unique().alias("datasets"),
        pl.len().alias("runs"),
        pl.col("n_epochs").sum().alias("epochs"),
        pl.col("pipeline_id").n_unique().alias("pipelines"),
        pl.col("model").n_unique().alias("models"),
        pl.col("n_epochs").mean().alias("mean"),
    ]
    per_version = runs.group_by("dataset_version").agg(aggs).sort("dataset_version")
    total = runs.select(pl.lit("**all**").alias("dataset_version"), *aggs)
    rows = [list(r) for r in pl.concat([per_version, total], how="vertical_relaxed").iter_rows()]
    headers = ["version", "datasets", "runs", "epochs", "pipelines", "models", "mean curve length (epochs)"]
    return ["## Size", "", *_table(headers, rows)]


def _status_section(runs: pl.DataFrame) -> list[str]:
    """Runs per status and version."""
    wide = runs.select("dataset_version").unique()
    counts = runs.group_by("dataset_version", "status").len()
    for status in STATUSES:
        c = counts.filter(pl.col("status") == status).select("dataset_version", pl.col("len").alias(status))
        wide = wide.join(c, on="dataset_version", how="left")
    wide = wide.fill_null(0).with_columns(pl.sum_horizontal(STATUSES).alias("total")).sort("dataset_version")
    lines = ["## Run status", "", *_table(["version", *STATUSES, "total"], [list(r) for r in wide.iter_rows()])]
    return [*lines, "ok: finished its budget; diverged: NaN loss; timeout: wall-clock cap (curve so far kept).", ""]


def _hours_name(runs: pl.DataFrame) -> str:
    """``CPU-hours`` when every run's ``hardware`` names a CPU (``cpu x...``), ``Device-hours`` when CPU and other
    runs mix, else ``GPU-hours`` (accelerator names, or no hardware recorded)."""
    hw = runs["hardware"].fill_null("") if "hardware" in runs.columns else pl.Series([""] * runs.height)
    on_cpu = hw.str.starts_with("cpu")
    if runs.height and on_cpu.all():
        return "CPU-hours"
    return "Device-hours (CPU and accelerator runs mixed)" if on_cpu.any() else "GPU-hours"


def _compute_section(runs: pl.DataFrame, synthetic: bool) -> list[str]:
    """Compute hours (sum of per-epoch train and eval time) per version."""
    per_version = (
        runs.group_by("dataset_version")
        .agg(pl.col("compute_s").sum().alias("s"))
        .sort("dataset_version")
        .with_columns((pl.col("s") / 3600).alias("h"))
    )
    rows = [[v, f"{s:,.0f}", f"{h:,.3f}"] for v, s, h in per_version.iter_rows()]
    total_s = float(runs["compute_s"].sum())
    rows.append(["**all**", f"{total_s:,.0f}", f"{total_s / 3600:,.3f}"])
    kind = "synthetic (generated, not measured)" if synthetic else "measured"
    return [
        "## Compute",
        "",
        *_table(["version", "seconds", "hours"], rows),
        f"{_hours_name(runs)} equivalent: **{total_s / 3600:,.3f} h**, only as the sum of the {kind} per-epoch "
        "`train_time + eval_time` of every stored epoch. It leaves out model loading, data preparation, "
        "failed or restarted jobs and queueing, and it is not normalised across the hardware listed under Provenance.",
        "",
    ]


def _curves_section(runs: pl.DataFrame, figures: dict[str, str]) -> list[str]:
    """Curve lengths and the distribution of final accuracies per version."""
    quantiles = [0.0, 0.25, 0.5, 0.75, 1.0]
    stats = (
        runs.group_by("dataset_version")
        .agg(
            pl.len().alias("runs"),
            (pl.col("final_top1").is_not_null() & pl.col("final_top1").is_finite()).sum().alias("finite"),
            *[
                pl.col("final_top1").filter(pl.col("final_top1").is_finite()).quantile(q).alias(str(q))
                for q in quantiles
            ],
        )
        .sort("dataset_version")
    )
    headers = ["version", "runs", "with finite final accuracy", "min", "q25", "median", "q75", "max"]
    return [
        "## Curves",
        "",
        *_figure(figures, "curve_lengths", "Curve lengths per version"),
        "Final accuracy is the validation top-1 (a fraction) of each run's last stored epoch.",
        "",
        *_table(headers, [[*r[:3], *(_accuracy(x) for x in r[3:])] for r in stats.iter_rows()]),
        *_figure(figures, "final_accuracy", "Final accuracy per version"),
    ]


def _quality_section(report: QualityReport, figures: dict[str, str]) -> list[str]:
    """Per-dataset quality table, model ranks and the checks of issue 12 (see :mod:`metagen.store.quality`)."""
    o = report.overall
    baseline = report.baseline or f"{NO_FOLDER}: write the card with `--datasets DIR` to compute it"
    lines = [
        "## Quality",
        "",
        "Does finetuning work on these datasets, and does the choice of model matter? Final accuracy is the "
        "validation top-1 of a run's last stored epoch; best and median are over runs with a finite one. "
        f"'≤{LOW_FACTOR:g}x chance' counts runs that end at or below {LOW_FACTOR:g} / K or without a finite "
        "accuracy; pretrained runs are those whose `pretrained_source` is recorded and is not "
        f"`{RANDOM_INIT}`; Spearman is between epoch-{EARLY_EPOCH} and final accuracy over runs with at least "
        f"{EARLY_EPOCH} epochs. Pixel LR: {baseline}.",
        "",
    ]
    shown = dataset_rows(report)
    note = []
    if len(shown) > MAX_TABLE_ROWS:
        note = [
            f"*First {MAX_TABLE_ROWS} of {len(shown):,} datasets; `python -m metagen.store quality` lists all.*",
            "",
        ]
        shown = shown[:MAX_TABLE_ROWS]
    lines += _table(DATASET_HEADERS, [list(r) for r in shown], left=2) + note
    lines += _figure(figures, "quality", "Best, median, pixel baseline and chance per dataset")
    pooled = (
        f"Pooled over {o.n_runs:,} runs: {_share(o.low_share)} end within {LOW_FACTOR:g}x chance; median final "
        f"accuracy {_accuracy(o.pretrained_median)} for {o.n_pretrained:,} pretrained runs and "
        f"{_accuracy(o.random_median)} for {o.n_random:,} random-init runs."
    )
    lines += [pooled, ""]
    lines += [
        "### Which model is best",
        "",
        f"{len(o.best_models)} different models are best on some dataset. Rank 1 is the model with the best final "
        "accuracy on a dataset (ties go to the higher median).",
        "",
    ]
    models = model_rows(report)
    cut = [f"*Top {MAX_TABLE_ROWS} of {len(models):,} models.*", ""] if len(models) > MAX_TABLE_ROWS else []
    lines += _table(MODEL_HEADERS, [list(r) for r in models[:MAX_TABLE_ROWS]]) + cut
    headers, rows = rank_matrix(report)
    if len(headers) - 1 <= MAX_RANK_COLUMNS and len(rows) <= MAX_TABLE_ROWS:
        lines += _table(headers, [list(r) for r in rows])
    lines += ["### Checks", "", *_table(["requirement", "status", "detail"], _check_rows(report), left=3)]
    return lines


def _share(value: float | None) -> str:
    """A share as a percentage with one decimal, ``—`` when missing."""
    return "—" if value is None else f"{value:.1%}"


def _check_rows(report: QualityReport) -> list[list[object]]:
    """One row per check, its status in bold when it passes or fails."""
    marks = {"pass": "**PASS**", "fail": "**FAIL**", "n/a": "n/a"}
    return [[c.requirement, marks[c.status], c.detail] for c in report.checks]


def _models_section(runs: pl.DataFrame, figures: dict[str, str]) -> list[str]:
    """Curves per model and version."""
    versions = runs["dataset_version"].unique().sort().to_list()
    wide = runs_by(runs, "model", versions)
    shown, note = _cut(wide, "models")
    rows = [list(r) for r in shown.iter_rows()]
    table = _table(["model", *versions, "total"], rows)
    return ["## Curves per model", "", *table, *note, *_figure(figures, "runs_per_model", "Curves per model")]


def _datasets_section(runs: pl.DataFrame, figures: dict[str, str]) -> list[str]:
    """Curves per dataset (the top of the table), a per-version summary and the heatmap."""
    per_dataset = (
        runs.group_by("dataset_version", "dataset")
        .agg(
            pl.len().alias("runs"),
            pl.col("n_epochs").sum().alias("epochs"),
            pl.col("pipeline_id").n_unique().alias("pipelines"),
            pl.col("model").n_unique().alias("models"),
        )
        .sort(["runs", "dataset_version", "dataset"], descending=[True, False, False])
    )
    summary = (
        per_dataset.group_by("dataset_version")
        .agg(
            pl.len().alias("datasets"),
            pl.col("runs").min().alias("min"),
            pl.col("runs").median().alias("median"),
            pl.col("runs").max().alias("max"),
        )
        .sort("dataset_version")
    )
    shown, note = _top_per_version(per_dataset, summary.height)
    headers = ["version", "dataset", "runs", "epochs", "pipelines", "models"]
    lines = ["## Curves per dataset", ""]
    lines += _table(["version", "datasets", "min runs", "median runs", "max runs"], [list(r) for r in summary.rows()])
    lines += _table(headers, [list(r) for r in shown.iter_rows()], left=2) + note
    lines += _figure(figures, "runs_per_dataset", "Curves per dataset")
    if "runs_heatmap" in figures:
        lines += _figure(figures, "runs_heatmap", "Runs per model and dataset")
    else:
        lines += ["*Runs heatmap left out: too many models or datasets to read.*", ""]
    return lines


def _top_per_version(per_dataset: pl.DataFrame, n_versions: int) -> tuple[pl.DataFrame, list[str]]:
    """All datasets if they fit in :data:`MAX_TABLE_ROWS` rows, else the ones with most runs of each version."""
    if per_dataset.height <= MAX_TABLE_ROWS:
        return per_dataset, []
    k = max(5, MAX_TABLE_ROWS // max(n_versions, 1))
    shown = (
        per_dataset.group_by("dataset_version", maintain_order=True)
        .head(k)
        .sort(["dataset_version", "runs", "dataset"], descending=[False, True, False])
    )
    note = f"*The {k} datasets with most runs of each version ({shown.height:,} of {per_dataset.height:,}); "
    return shown, [note + "the figure shows all.*", ""]


def _meta_feature_section(runs: pl.DataFrame) -> list[str]:
    """Ranges (min–max) of the dataset meta-features per version."""
    stats = (
        runs.group_by("dataset_version")
        .agg(*[pl.col(m).min().alias(f"{m}_min") for m in _META_FEATURES])
        .join(runs.group_by("dataset_version").agg(*[pl.col(m).max() for m in _META_FEATURES]), on="dataset_version")
        .sort("dataset_version")
    )
    rows = [
        [r["dataset_version"], *[_range(r[f"{m}_min"], r[m]) for m in _META_FEATURES]]
        for r in stats.iter_rows(named=True)
    ]
    return ["## Meta-feature ranges", "", *_table(["version", *_META_FEATURES], rows)]


def _range(low: int | None, high: int | None) -> str:
    """``low–high`` (or one value, or ``—`` when not recorded)."""
    if low is None or high is None:
        return "—"
    return _fmt(low) if low == high else f"{_fmt(low)}–{_fmt(high)}"


def _provenance_section(metadata: StoreMetadata, runs: pl.DataFrame) -> list[str]:
    """Where the store and its runs come from: metadata, sources, weights, hardware, packages."""
    generator = json.dumps(metadata.generator, indent=2, sort_keys=True) if metadata.generator else None
    lines = [
        "## Provenance",
        "",
        f"- Schema version: {metadata.schema_version}",
        f"- Store created: {metadata.created_at}",
        f"- Synthetic: {'yes' if metadata.synthetic else 'no'}",
        "- Generator:" + (" none recorded" if generator is None else ""),
        "",
    ]
    lines += ["```json", generator, "```", ""] if generator else []
    if runs.height == 0:
        return lines
    for column, title in (("source", "Source"), ("pretrained_source", "Pretrained weights"), ("hardware", "Hardware")):
        lines += [f"### {title}", "", *_value_counts(runs, column)]
    return [*lines, "### Package versions (union over runs)", "", *_package_versions(runs)]


def _value_counts(runs: pl.DataFrame, column: str) -> list[str]:
    """Runs per value of a column (top :data:`MAX_VALUES`, the rest summed)."""
    counts = runs.group_by(column).len().sort(["len", column], descending=[True, False], nulls_last=True)
    labelled = counts.with_columns(pl.col(column).fill_null("*(not recorded)*"))
    rows = [list(r) for r in labelled.head(MAX_VALUES).iter_rows()]
    if counts.height > MAX_VALUES:
        rest = counts.tail(counts.height - MAX_VALUES)
        rows.append([f"*{rest.height:,} others*", int(rest["len"].sum())])
    return _table(["value", "runs"], rows)


def _package_versions(runs: pl.DataFrame) -> list[str]:
    """Each package with the versions seen and the runs that record it (distinct JSON texts parsed once)."""
    texts = runs.group_by("package_versions").len().drop_nulls("package_versions")
    seen: dict[str, set[str]] = defaultdict(set)
    recorded: dict[str, int] = defaultdict(int)
    for text, n in texts.iter_rows():
        for package, version in json.loads(text).items():
            seen[package].add(str(version))
            recorded[package] += n
    if not seen:
        return ["none recorded", ""]
    rows = [[p, ", ".join(sorted(seen[p])), recorded[p]] for p in sorted(seen)]
    return _table(["package", "versions", "runs"], rows, left=2)


def _deviations_section(metadata: StoreMetadata) -> list[str]:
    """The store's known deviations from the Quick-Tune protocol."""
    items = [f"- {d}" for d in metadata.deviations] or ["None recorded."]
    return ["## Known deviations", "", *items, ""]
