"""Import a QuickTuneTool (QTT) meta-dataset of csv files into a learning-curve store.

Layout: ``<src>/<version>/{config,meta,curve,cost}.csv``, one directory per version, or the four
files directly in ``<src>`` (the version is then the name of ``<src>``). Each file's first column
is an index, usually unnamed, that holds the run ids. The files are aligned by that index, one row
per run:

* ``config.csv``: the configuration. Column names may be underscored or hyphenated.
* ``meta.csv``: the dataset's meta-features on every row (``num_samples``, ``num_classes``,
  ``num_features``, ``num_channels``; hyphenated names work too).
* ``curve.csv``: validation accuracy per epoch, one column per epoch, NaN after the run stopped.
* ``cost.csv``: one column, the total runtime of the run in seconds.

Only polars reads these files (pandas is not needed). The ids are read as text, so large
integer ids stay exact.

Mapping decisions (listed in the store's ``deviations`` too):

* Model: the current timm name, through the search space's aliases; names the space does not know are kept.
  Categorical values take the schema's spelling (QTT's ``random-augment`` -> ``random_augment``); any other
  unknown value is kept and ``validate`` rejects the run.
* Names: ``-`` in column names becomes ``_``. Run id: ``<version>-<index>``, made file-name safe.
* Dataset: a ``dataset`` column in config.csv (else in meta.csv) names it. Its last path
  component is used, as for Quick-Tune keys. Without such a column, runs with identical meta.csv
  rows form one dataset, named ``<version>-task<k>`` with k = 0, 1, ... in order of first
  appearance.
* Accuracies: fractions in [0, 1]. If the largest value in a curve.csv is above 1, the file is in
  percent and is divided by 100 (a note says so).
* Epochs: a run's epochs are the curve's values up to its last non-NaN value. A NaN before that
  makes the run ``diverged``, and it is kept up to and including that epoch. ``max_epochs`` is
  the number of curve columns (QTT's fidelity budget). A run that reaches it is ``ok``; one that
  stops earlier is ``timeout``, which is inferred. A run with no value is skipped.
* Times: QTT records one total runtime per run. It is split evenly over the trained epochs as
  ``train_time``, and ``eval_time`` is 0. Per-epoch times are therefore approximations.
* Hyperparameters: the schema's columns. ``opt_betas`` such as ``"(0.9, 0.99)"`` become
  ``"0.9 0.99"``, and ``none`` means None. QTT writes 0 for "off" in ``clip_grad`` and
  ``layer_decay``, and 0 is not a valid value of either, so 0 becomes NULL. Inactive conditionals
  (e.g. ``decay_epochs`` 0.0) become NULL. Other config columns are hyperparameters too and go to
  ``extra_hps``, except ``model``, ``dataset`` and ``seed``. A missing column takes the
  Quick-Tune ``finetune.py`` parser default, and a note says so.
* Meta-features: ``num_classes`` -> ``num_classes``, ``num_features`` (about the image width) ->
  ``resolution``, ``num_channels`` -> ``channels``, a ``train_size`` column -> ``train_size``. QTT's
  ``num_samples`` counts training **and validation** images, so it is not ``train_size``: it is kept per
  dataset in ``store.json`` (``generator.num_samples``), and ``train_size`` is NULL unless the import is told
  the training share of those images (``train_fraction``, e.g. 0.75 for Meta-Album's 60/20/20 split:
  ``train_size = round(train_fraction * num_samples)``). Other meta columns are not stored.
* Dataset order: the dataset keys in order of first appearance in config.csv (meta.csv) are kept in
  ``store.json`` (``generator.dataset_keys``), from which the paper's folds are built.
* ``seed`` is the config's ``seed`` column, or 0. ``pretrained_source`` is NULL, because QTT does
  not record it.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl

from metagen.store.importers.common import (
    ImportedRun,
    ImportReport,
    ImportSourceError,
    SkipRun,
    current_model_name,
    dataset_name_of,
    fill_notes,
    finish_run,
    hyperparameters_from,
    is_missing,
    positive_int,
    run_id_for,
    source_order,
    to_bool,
    to_float,
    to_int,
    write_import,
)
from metagen.store.layout import DATASET_KEYS, SAMPLE_COUNTS, StoreMetadata
from metagen.store.schema import HYPERPARAMETERS

SOURCE = "import-qtt"
FILES = ("config", "meta", "curve", "cost")
INDEX = "_id"
META_COLUMNS = {
    "train_size": "train_size",
    "num_classes": "num_classes",
    "num_features": "resolution",
    "resolution": "resolution",
    "num_channels": "channels",
    "channels": "channels",
}
"""meta.csv column -> store meta-feature column (``num_samples`` is not one: see the module docstring)."""
SAMPLES = "num_samples"
ZERO_MEANS_NONE = ("clip_grad", "layer_decay")
NOT_EXTRA = frozenset({"model", "dataset", "seed", "trivial_augment", "random_augment"})

DEVIATIONS = (
    "QTT import: cost.csv holds one total runtime per run; it is split evenly over the trained epochs as "
    "train_time, and eval_time is 0.",
    "QTT import: max_epochs is the number of curve.csv columns; a shorter curve is 'timeout', which is inferred.",
    "QTT import: a curve.csv whose largest value is above 1 is taken as percent and divided by 100.",
    "QTT import: without a 'dataset' column, runs with identical meta.csv rows form one dataset, named "
    "'<version>-task<k>'.",
    "QTT import: clip_grad and layer_decay of 0 (QTT's 'off') are NULL; inactive conditionals are NULL.",
    "QTT import: num_features is stored as resolution (image width).",
    "QTT import: num_samples counts training + validation images; it is kept in store.json (generator.num_samples), "
    "and train_size is NULL unless a train_fraction was given (train_size = round(train_fraction * num_samples)).",
    "QTT import: seed is 0 unless config.csv has a seed column; pretrained_source is unknown (NULL).",
    "QTT import: models are stored under their current timm names (the search space's aliases map old names); "
    "hyphenated categorical values (random-augment, ...) take the schema's spelling (random_augment, ...).",
    "QTT import: config columns outside the schema's hyperparameters are stored in extra_hps; missing ones take "
    "the Quick-Tune finetune.py parser defaults.",
)


def import_qtt(
    src: str | Path, dest: str | Path, name: str | None = None, train_fraction: float | None = None
) -> ImportReport:
    """Import a QuickTuneTool csv meta-dataset into a store.

    Args:
        src: a directory of version directories holding config/meta/curve/cost.csv, or one such
            directory itself.
        dest: the store; it is created if it does not exist.
        name: the store's name when it is created (default: the name of ``src``).
        train_fraction: the share of QTT's ``num_samples`` (training + validation images) used for training;
            given, ``train_size = round(train_fraction * num_samples)``; ``None`` (default) leaves it NULL.

    Returns:
        What was imported and what was skipped, and why.

    Raises:
        ImportSourceError: ``src`` does not hold the four files, or they are broken or disagree.
        RunConflictError: ``dest`` holds one of the run ids with other content.
    """
    if train_fraction is not None and not 0 < train_fraction <= 1:
        raise ImportSourceError(f"train_fraction must lie in (0, 1], got {train_fraction}")
    src = Path(src)
    report = ImportReport(source=str(src))
    versions = _find_versions(src)
    runs: list[ImportedRun] = []
    keys: dict[str, list[str]] = {}
    counts: dict[str, dict[str, int]] = {}
    for version, directory in versions:
        version_runs, keys[version], counts[version] = _read_version(version, directory, report, train_fraction)
        runs += version_runs
    report.versions = [v for v, _ in versions]
    metadata = StoreMetadata(
        name=name or src.name,
        description=f"QuickTuneTool meta-dataset imported from {src.name}",
        deviations=DEVIATIONS,
        generator={"importers": [SOURCE], DATASET_KEYS: keys, SAMPLE_COUNTS: counts},
    )
    write_import(dest, metadata, runs, report)
    return report


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _find_versions(src: Path) -> list[tuple[str, Path]]:
    """(version, directory) pairs; each directory holds the four csv files."""
    if not src.is_dir():
        raise ImportSourceError(f"{src} is not a directory; pass the QTT meta-dataset directory")
    if _has_any(src):
        candidates = [(src.name, src)]
    else:
        candidates = [(d.name, d) for d in sorted(src.iterdir()) if d.is_dir() and _has_any(d)]
    if not candidates:
        raise ImportSourceError(
            f"{src} is not a QTT meta-dataset: expected <src>/<version>/config.csv, meta.csv, curve.csv and "
            "cost.csv (or the four files directly in <src>)"
        )
    for _, directory in candidates:
        for f in FILES:
            if not (directory / f"{f}.csv").is_file():
                raise ImportSourceError(f"{directory / (f + '.csv')} is missing; QTT needs {', '.join(FILES)}.csv")
    return candidates


def _has_any(directory: Path) -> bool:
    return any((directory / f"{f}.csv").is_file() for f in FILES)


def _read_indexed_csv(path: Path) -> pl.DataFrame:
    """A QTT csv as text columns: the first column renamed ``_id``, ``-`` in names turned into ``_``.

    Raises:
        ImportSourceError: the file is unreadable, empty, or has empty, repeated or duplicate ids or names.
    """
    try:
        frame = pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as e:
        raise ImportSourceError(f"{path} is not a readable csv ({e})") from e
    if frame.width < 2:
        raise ImportSourceError(f"{path} needs an index column (the run ids) and at least one value column")
    names = [INDEX] + [c.strip().replace("-", "_") for c in frame.columns[1:]]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ImportSourceError(f"{path}: columns {repeated} appear twice (after turning '-' into '_')")
    frame = frame.rename(dict(zip(frame.columns, names, strict=True)))
    ids = frame[INDEX]
    if ids.null_count() or ids.is_duplicated().any():
        raise ImportSourceError(f"{path}: the first column must hold one unique run id per row")
    return frame


def _aligned(directory: Path) -> dict[str, pl.DataFrame]:
    """The four files, each with its rows in config.csv's order."""
    frames = {f: _read_indexed_csv(directory / f"{f}.csv") for f in FILES}
    order = frames["config"].select(INDEX)
    expected = set(order[INDEX].to_list())
    for f in FILES[1:]:
        got = set(frames[f][INDEX].to_list())
        if got != expected:
            diff = sorted(got ^ expected)[:5]
            raise ImportSourceError(
                f"{directory / (f + '.csv')} and {directory / 'config.csv'} hold different run ids (e.g. {diff}); "
                "the files must be aligned by their index column"
            )
        frames[f] = order.join(frames[f], on=INDEX, how="left", maintain_order="left")
    return frames


def _numbers(frame: pl.DataFrame, path: Path) -> list[list[float]]:
    """The value columns of a frame as float rows (empty cells are NaN)."""
    try:
        values = frame.drop(INDEX).cast(pl.Float64).fill_null(math.nan)
    except pl.exceptions.PolarsError as e:
        raise ImportSourceError(f"{path} holds a value that is not a number ({e})") from e
    return [list(row) for row in values.rows()]


# --------------------------------------------------------------------------------------------
# One version
# --------------------------------------------------------------------------------------------


def _read_version(
    version: str, directory: Path, report: ImportReport, train_fraction: float | None
) -> tuple[list[ImportedRun], list[str], dict[str, int]]:
    """The runs of one version directory, its dataset keys in file order and QTT's ``num_samples`` per dataset."""
    frames = _aligned(directory)
    curves = _curves(frames["curve"], directory / "curve.csv", report)
    costs = _costs(frames["cost"], directory / "cost.csv")
    configs = frames["config"].rows(named=True)
    metas = frames["meta"].rows(named=True)
    keys = _dataset_keys(version, configs, metas)
    width = frames["curve"].width - 1
    filled: Counter[str] = Counter()
    out = []
    for config, meta, curve, cost, key in zip(configs, metas, curves, costs, keys, strict=True):
        source_id = f"{version}/{config[INDEX]}"
        try:
            out.append(_qtt_run(version, key, config, meta, curve, cost, width, filled, train_fraction))
        except SkipRun as e:
            report.skip(source_id, str(e))
    report.notes += fill_notes(filled, str(directory / "config.csv"))
    return out, source_order(keys), _sample_counts(keys, metas)


def _curves(frame: pl.DataFrame, path: Path, report: ImportReport) -> list[list[float]]:
    """Accuracy rows as fractions (a file in percent is divided by 100)."""
    rows = _numbers(frame, path)
    finite = [v for row in rows for v in row if not math.isnan(v)]
    if finite and max(finite) > 1:
        report.notes.append(f"{path} holds percentages (largest value {max(finite):g}); divided by 100")
        rows = [[v / 100.0 for v in row] for row in rows]
    return rows


def _costs(frame: pl.DataFrame, path: Path) -> list[float]:
    if frame.width != 2:
        raise ImportSourceError(f"{path} must have exactly one value column (the total runtime of each run)")
    return [row[0] for row in _numbers(frame, path)]


def _dataset_keys(version: str, configs: list[dict[str, Any]], metas: list[dict[str, Any]]) -> list[str]:
    """The dataset key of each run: a ``dataset`` column, else ``<version>-task<k>`` by meta.csv row."""
    for rows in (configs, metas):
        if rows and "dataset" in rows[0]:
            return [r["dataset"] or "" for r in rows]
    tasks: dict[tuple[Any, ...], str] = {}
    keys = []
    for meta in metas:
        row = tuple(v for k, v in meta.items() if k != INDEX)
        keys.append(tasks.setdefault(row, f"{version}-task{len(tasks)}"))
    return keys


# --------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------


def _qtt_run(
    version: str,
    key: str,
    config: dict[str, Any],
    meta: dict[str, Any],
    curve: list[float],
    cost: float,
    width: int,
    filled: Counter[str],
    train_fraction: float | None,
) -> ImportedRun:
    """One QTT run as a store run; SkipRun with the reason if it cannot be imported."""
    model = config.get("model")
    if is_missing(model):
        raise SkipRun("config.csv has no 'model' for this run")
    args = {k: v for k, v in config.items() if k != INDEX}
    for k in ZERO_MEANS_NONE:
        if k in args and _is_zero(args[k]):
            args[k] = None
    hps, defaults = hyperparameters_from(args)
    filled.update(defaults)
    fields = {
        "run_id": run_id_for(version, config[INDEX]),
        "dataset": dataset_name_of(key),
        "dataset_version": version,
        "model": current_model_name(str(model).strip()),
        **hps,
        "extra_hps": json.dumps(_extras(args), sort_keys=True),
        "seed": _seed(args.get("seed")),
        "source": SOURCE,
        "pretrained_source": None,
        **_meta_features(meta, train_fraction),
    }
    return finish_run(f"{version}/{config[INDEX]}", key, fields, _curve(curve, cost), max_epochs=width)


def _is_zero(value: Any) -> bool:
    try:
        return not is_missing(value) and to_float(value) == 0.0
    except ValueError:
        return False


def _extras(args: dict[str, Any]) -> dict[str, Any]:
    """Config columns outside the schema's hyperparameters, as JSON values."""
    return {k: _scalar(v) for k, v in args.items() if k not in HYPERPARAMETERS and k not in NOT_EXTRA}


def _scalar(text: Any) -> Any:
    """A csv cell as None, bool, int, float or text."""
    if is_missing(text):
        return None
    for parse in (to_bool, to_int, to_float):
        try:
            return parse(text)
        except ValueError:
            continue
    return str(text)


def _seed(value: Any) -> int:
    if is_missing(value):
        return 0
    try:
        return to_int(value)
    except ValueError as e:
        raise SkipRun(f"config.csv 'seed' is not an integer: {value!r}") from e


def _meta_features(meta: dict[str, Any], train_fraction: float | None) -> dict[str, int | None]:
    out: dict[str, int | None] = dict.fromkeys(("train_size", "num_classes", "resolution", "channels"))
    for column, target in META_COLUMNS.items():
        if column in meta:
            out[target] = _meta_int(meta, column)
    samples = _meta_int(meta, SAMPLES) if SAMPLES in meta else None
    if out["train_size"] is None and samples is not None and train_fraction is not None:
        out["train_size"] = max(1, round(train_fraction * samples))
    return out


def _meta_int(meta: dict[str, Any], column: str) -> int | None:
    try:
        return positive_int(meta[column])
    except ValueError as e:
        raise SkipRun(f"meta.csv '{column}' is not a number: {meta[column]!r}") from e


def _sample_counts(keys: list[str], metas: list[dict[str, Any]]) -> dict[str, int]:
    """QTT's ``num_samples`` of each dataset (its first meta.csv row that has one)."""
    counts: dict[str, int] = {}
    for key, meta in zip(keys, metas, strict=True):
        try:
            n = positive_int(meta.get(SAMPLES))
        except ValueError:
            continue  # the run is skipped with the reason (_meta_features)
        if n is not None:
            counts.setdefault(dataset_name_of(key) if key else key, n)
    return counts


def _curve(values: list[float], cost: float) -> dict[str, list[float]]:
    """Store curve columns: the accuracies up to the last measured epoch, the cost split over them."""
    measured = [i for i, v in enumerate(values) if not math.isnan(v)]
    if not measured:
        raise SkipRun("curve.csv has no accuracy for this run")
    accuracies = values[: measured[-1] + 1]
    if math.isnan(cost) or cost < 0:
        raise SkipRun(f"cost.csv has no valid runtime for this run ({cost})")
    n = len(accuracies)
    return {"eval_top1": accuracies, "train_time": [cost / n] * n, "eval_time": [0.0] * n}
