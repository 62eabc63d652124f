"""Helpers shared by the importers: reports, errors, hyperparameter mapping and writing.

* :func:`import_quicktune` reads the Quick-Tune meta-dataset, in its aggregated JSON layout or
  its raw per-run layout (:mod:`metagen.store.importers.quicktune`).
* :func:`import_qtt` reads the QuickTuneTool CSV layout (:mod:`metagen.store.importers.qtt`).

Both read the whole source first, so a broken source fails before anything is written. Then they
write one compacted part per (version, dataset). Importing the same source again writes nothing.
A run that cannot be imported is skipped, and the :class:`ImportReport` gives the reason.

This module holds what both importers share: the report, the mapping from original arguments to
the schema's hyperparameters, run ids, status inference and writing. Each importer's module
docstring lists the rules it follows.

Shared decisions (the importers' docstrings repeat them where they apply):

* A run id is ``<version>-<original run id>``. Characters outside ``[A-Za-z0-9._+=-]`` become
  ``_``. An id longer than 200 characters is shortened and ends in a hash of the full id.
* A dataset name is the last path component of the original key: ``mtlbm/micro/set1/PNU`` becomes
  ``PNU``. Two keys of one version that end the same way are an error, so runs of different
  datasets are never merged.
* Hyperparameters are the schema's :data:`~metagen.store.schema.HYPERPARAMETERS`. The string
  ``"None"`` (also ``none``, ``nan``, empty) means None. ``opt_betas`` is stored as the string
  ``"b1 b2"``; integral values are written without a decimal point, so ``[0.0, 0.99]`` becomes
  ``"0 0.99"``, as in the search space. ``data_augmentation`` comes from the source's
  ``data_augmentation`` value if it has one. Otherwise it comes from the Quick-Tune flags, in
  this order: ``trivial_augment``, ``random_augment``, then an ``auto_augment`` policy that is
  not None. Then :func:`~metagen.store.schema.drop_inactive` sets inactive conditionals to NULL
  (the original files hold parser defaults there).
* A hyperparameter that the source does not have at all takes the default of Quick-Tune's
  ``finetune.py`` parser, which is what the training script used when the flag was not passed.
  Every such fill appears in the report's notes. ``lr`` and ``model`` have no usable default, so
  a run without them is skipped.
* Status is ``diverged`` if the source says so or if ``train_loss`` or ``eval_top1`` is NaN. The
  curve is kept up to and including the first NaN epoch. Otherwise the status is ``ok`` if the
  curve reaches ``max_epochs``. Otherwise it is ``timeout``. That status is inferred: the
  original data does not say why a run stopped early.
* NaN values (a diverged epoch's loss or accuracy) are stored as NaN; a column the source does not
  have is NULL.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from metagen.search_space import SearchSpace
from metagen.store.errors import StoreError, ValidationError
from metagen.store.layout import StoreMetadata, create_store, dataset_of_key, merge_generator, update_metadata
from metagen.store.records import complete_run
from metagen.store.schema import (
    CATEGORICAL_VALUES,
    CURVE_VALUE_COLUMNS,
    CURVES_SCHEMA,
    HYPERPARAMETER_COLUMNS,
    HYPERPARAMETERS,
    RUN_ID_PATTERN,
    RUNS_SCHEMA,
    drop_inactive,
    validate,
)
from metagen.store.writer import refresh_array_views, write_partition

MAX_LISTED = 20
"""Skipped runs and notes listed by ``str(ImportReport)``; the report itself keeps all of them."""

PARSER_DEFAULTS: dict[str, Any] = {
    "pct_to_freeze": 1.0,
    "layer_decay": None,
    "linear_probing": False,
    "stoch_norm": False,
    "sp_reg": 0.0,
    "delta_reg": 0.0,
    "bss_reg": 0.0,
    "cotuning_reg": 0.0,
    "mixup": 0.0,
    "mixup_prob": 1.0,
    "cutmix": 0.0,
    "drop": 0.0,
    "smoothing": 0.1,
    "clip_grad": None,
    "data_augmentation": None,
    "auto_augment": None,
    "ra_num_ops": 2,
    "ra_magnitude": 8,
    "opt": "sgd",
    "opt_betas": None,
    "momentum": 0.9,
    "warmup_lr": 1e-5,
    "warmup_epochs": 5,
    "weight_decay": 2e-5,
    "batch_size": 128,
    "amp": False,
    "sched": "cosine",
    "patience_epochs": 10,
    "decay_rate": 0.1,
    "decay_epochs": 90,
}
"""Defaults of Quick-Tune's ``finetune.py`` parser, used when a source lacks a hyperparameter.
``lr`` is absent on purpose: its parser default is None, and then timm derives it from the batch size."""

_TYPES: dict[str, type] = {
    c.name: {pa.bool_(): bool, pa.float64(): float, pa.int64(): int}.get(c.type, str) for c in HYPERPARAMETER_COLUMNS
}
_NULLABLE = {c.name for c in HYPERPARAMETER_COLUMNS if c.nullable}
_MISSING_TEXT = {"", "none", "nan", "null"}
_AUGMENTATIONS = ("trivial_augment", "random_augment", "auto_augment")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]")


class ImportSourceError(StoreError):
    """The source is not in a layout the importer knows, or one of its files is broken."""


class SkipRun(Exception):
    """One run of the source cannot be imported; the message is the reason given in the report."""


@dataclass
class ImportReport:
    """What an import did.

    Attributes:
        source: the directory that was imported.
        runs_imported: runs written by this import.
        runs_unchanged: runs that were already stored with the same content (a repeated import).
        runs_skipped: ``(source id, reason)`` for each run that was not imported.
        datasets: the ``(version, dataset)`` pairs that hold imported runs.
        versions: the dataset versions found in the source.
        notes: things done to many runs at once (defaults filled in, units converted, ...).
    """

    source: str
    runs_imported: int = 0
    runs_unchanged: int = 0
    runs_skipped: list[tuple[str, str]] = field(default_factory=list)
    datasets: list[tuple[str, str]] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def skip(self, source_id: str, reason: str) -> None:
        """Record a run that is not imported."""
        self.runs_skipped.append((source_id, reason))

    def __str__(self) -> str:
        versions = ", ".join(self.versions) or "none"
        lines = [
            f"import of {self.source}: {self.runs_imported} run(s) written, {self.runs_unchanged} already stored, "
            f"{len(self.runs_skipped)} skipped; {len(self.datasets)} dataset(s); versions: {versions}"
        ]
        lines += [f"  note: {n}" for n in self.notes[:MAX_LISTED]]
        lines += [f"  skipped {sid}: {reason}" for sid, reason in self.runs_skipped[:MAX_LISTED]]
        if len(self.runs_skipped) > MAX_LISTED:
            lines.append(f"  ... and {len(self.runs_skipped) - MAX_LISTED} more skipped run(s)")
        return "\n".join(lines)


@dataclass
class ImportedRun:
    """One run read from a source, ready to be written.

    Attributes:
        source_id: how the source names the run (used in the report).
        dataset_key: the source's full dataset key (e.g. ``mtlbm/micro/set1/PNU``).
        fields: the run's columns of the runs table.
        curve: curve columns (without ``run_id`` and ``epoch``), one list per column, all of one length.
    """

    source_id: str
    dataset_key: str
    fields: dict[str, Any]
    curve: dict[str, list[Any]]


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------


def run_id_for(version: str, original: str) -> str:
    """The store's run id for a source's run: ``<version>-<original id>``, made file-name safe."""
    run_id = _UNSAFE.sub("_", f"{version}-{original}")
    if not run_id[:1].isalnum():
        run_id = "r" + run_id
    if len(run_id) > 200:
        digest = hashlib.sha1(run_id.encode()).hexdigest()[:16]
        run_id = f"{run_id[:183]}-{digest}"
    assert RUN_ID_PATTERN.match(run_id), run_id
    return run_id


def dataset_name_of(key: str) -> str:
    """The store's dataset name for a source's dataset key: its last path component."""
    name = dataset_of_key(key)
    if not name:
        raise SkipRun(f"dataset key {key!r} has no name")
    return name


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def is_missing(value: Any) -> bool:
    """Whether a source value means None: None, NaN, or the text None / none / nan / null / empty."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip().lower() in _MISSING_TEXT


def to_float(value: Any) -> float:
    """A number as a float (None and missing-value text become NaN); ValueError otherwise."""
    if is_missing(value):
        return math.nan
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


def to_int(value: Any) -> int:
    """An integral number as an int (``20.0`` and ``"20"`` included); ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an integer")
    if isinstance(value, int):
        return value
    number = float(value)
    if not number.is_integer():
        raise ValueError(f"{value!r} is not an integer")
    return int(number)


def to_bool(value: Any) -> bool:
    """A flag as a bool: bools, 0/1 and the texts true/false/1/0 (any case); ValueError otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "1.0", "0.0"):
        return value.strip().lower() in ("true", "1", "1.0")
    raise ValueError(f"{value!r} is not a boolean")


def positive_int(value: Any) -> int | None:
    """A count (a meta-feature, a batch size) as a positive int, or None when missing or not positive."""
    if is_missing(value):
        return None
    number = round(to_float(value))
    return number if number > 0 else None


def format_betas(value: Any) -> str | None:
    """Adam betas as ``"b1 b2"``, from a list, a tuple or a text such as ``"(0.9, 0.99)"``."""
    if is_missing(value):
        return None
    numbers = [float(x) for x in value] if isinstance(value, list | tuple) else _betas_from_text(str(value))
    return " ".join(str(int(x)) if x.is_integer() else repr(x) for x in numbers)


def _betas_from_text(text: str) -> list[float]:
    numbers = [float(x) for x in _NUMBER.findall(text)]
    if not numbers:
        raise ValueError(f"{text!r} holds no numbers")
    return numbers


@functools.cache
def _model_names() -> dict[str, str]:
    """Old timm name or paper alias -> current timm name, for the models of the Quick-Tune space (``v1``)."""
    names: dict[str, str] = {}
    for m in SearchSpace.load("v1").models:
        for old in (m.alias, m.name.split(".")[0]):
            names.setdefault(old, m.name)
    return names


def current_model_name(name: str) -> str:
    """The current timm name of a model the originals name by its old timm name (``beit_large_patch16_512`` ->
    ``beit_large_patch16_512.in22k_ft_in22k_in1k``, through the space's aliases), so imported runs and sweep runs
    share one model column; a name the space does not know is kept."""
    return _model_names().get(name, name)


def coerce_hyperparameter(name: str, value: Any) -> Any:
    """A source value as the Python type of the schema column ``name`` (None when missing)."""
    if name == "opt_betas":
        return format_betas(value)
    if is_missing(value):
        return None
    kind = _TYPES[name]
    if kind is bool:
        return to_bool(value)
    if kind is int:
        return to_int(value)
    if kind is float:
        return to_float(value)
    return categorical_value(name, str(value).strip())


def categorical_value(name: str, text: str) -> str:
    """``text`` in the schema's spelling: QuickTuneTool writes ``random-augment`` for ``random_augment`` (and
    so on); a value that is not a known one under any spelling is kept as it is, and ``validate`` flags it."""
    allowed = CATEGORICAL_VALUES.get(name)
    if allowed is None or text in allowed:
        return text
    spelled = text.replace("-", "_").lower()
    return spelled if spelled in allowed else text


def hyperparameters_from(args: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The schema's hyperparameters of a run, from the original arguments (QT args or a QTT config row).

    Args:
        args: the original names and values (underscored names).

    Returns:
        The hyperparameters, with inactive conditionals set to None, and the names that the source
        lacked and that took :data:`PARSER_DEFAULTS`.

    Raises:
        SkipRun: a value cannot be read as its column's type, or ``lr`` is missing or empty.
    """
    raw = {k: args[k] for k in HYPERPARAMETERS if k in args}
    raw["data_augmentation"] = _augmentation(args)
    filled = [k for k in HYPERPARAMETERS if k not in raw and k in PARSER_DEFAULTS]
    for k in filled:
        raw[k] = PARSER_DEFAULTS[k]
    if "lr" not in raw:
        raise SkipRun("the source has no 'lr' for this run")
    hps = {}
    for name in HYPERPARAMETERS:
        try:
            hps[name] = coerce_hyperparameter(name, raw[name])
        except (TypeError, ValueError) as e:
            raise SkipRun(f"hyperparameter '{name}' has an unreadable value {raw[name]!r} ({e})") from e
    hps = drop_inactive(hps)
    empty = [k for k, v in hps.items() if v is None and k not in _NULLABLE]
    if empty:
        raise SkipRun(f"required hyperparameter(s) {empty} are empty")
    return hps, filled


def _augmentation(args: Mapping[str, Any]) -> Any:
    """``data_augmentation`` from the source's own value, else from Quick-Tune's flags."""
    if "data_augmentation" in args:
        return args["data_augmentation"]
    for flag in ("trivial_augment", "random_augment"):
        value = args.get(flag)
        try:
            if not is_missing(value) and to_bool(value):
                return flag
        except ValueError as e:
            raise SkipRun(f"flag '{flag}' has an unreadable value {value!r}") from e
    return "auto_augment" if not is_missing(args.get("auto_augment")) else None


def fill_notes(counts: Counter[str], where: str) -> list[str]:
    """Report notes for hyperparameters filled with parser defaults (counts per name)."""
    return [
        f"{n} run(s) in {where} have no '{k}'; used the finetune.py default {PARSER_DEFAULTS[k]!r}"
        for k, n in sorted(counts.items())
    ]


# --------------------------------------------------------------------------------------------
# Curves and status
# --------------------------------------------------------------------------------------------


def finish_run(
    source_id: str,
    dataset_key: str,
    fields: dict[str, Any],
    curve: Mapping[str, list[float]],
    *,
    max_epochs: int,
    diverged: bool = False,
    peak_memory: int | None = None,
) -> ImportedRun:
    """A run with its curve truncated at the first NaN, its status and its epoch counts set.

    Args:
        source_id: how the source names the run.
        dataset_key: the source's dataset key.
        fields: the run's columns so far (no status, n_epochs or max_epochs).
        curve: curve columns as float lists of one length (NaN = not a number / not measured).
        max_epochs: the epoch budget of the run.
        diverged: the source says the loss became invalid.
        peak_memory: peak memory of the whole run in bytes, stored on its last epoch.

    Raises:
        SkipRun: the curve is empty or its columns differ in length.
    """
    lengths = {k: len(v) for k, v in curve.items()}
    if len(set(lengths.values())) > 1:
        raise SkipRun(f"curve columns have different lengths {lengths}")
    n = len(curve["eval_top1"])
    first_nan = _first_nan(curve, n)
    if first_nan is not None:
        n = first_nan + 1
    if n == 0:
        raise SkipRun("the curve has no epochs")
    columns: dict[str, list[Any]] = {k: v[:n] for k, v in curve.items()}  # a copy: the caller's dict stays as it was
    columns["peak_memory"] = [None] * (n - 1) + [peak_memory]
    status, message = _status(n, max_epochs, diverged, first_nan)
    fields = {**fields, "n_epochs": n, "max_epochs": max_epochs, "status": status, "status_message": message}
    return ImportedRun(source_id, dataset_key, fields, columns)


def _first_nan(curve: Mapping[str, list[float]], n: int) -> int | None:
    for i in range(n):
        if any(math.isnan(curve[k][i]) for k in ("train_loss", "eval_top1") if k in curve):
            return i
    return None


def _status(n: int, max_epochs: int, diverged: bool, first_nan: int | None) -> tuple[str, str | None]:
    if first_nan is not None:
        return "diverged", f"NaN training loss or accuracy at epoch {first_nan + 1}"
    if diverged:
        return "diverged", "the source marks the loss as invalid (invalid_loss_value)"
    if n >= max_epochs:
        return "ok", None
    return "timeout", f"stopped after {n} of {max_epochs} epochs (inferred; the source does not say why)"


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write_import(dest: str | Path, metadata: StoreMetadata, runs: Sequence[ImportedRun], report: ImportReport) -> None:
    """Write imported runs into the store at ``dest`` (created if needed), one part per (version, dataset).

    Runs that break the schema are skipped and reported with the problem found. Runs already
    stored with the same content are counted as unchanged.

    Raises:
        ImportSourceError: two source runs map to one run id, or two dataset keys to one dataset.
        RunConflictError: a run id is stored with other content (the source changed since an import).
    """
    groups = _group(runs)
    prepared = {key: _frames(group, report) for key, group in sorted(groups.items())}
    _open_store(dest, metadata)
    for (version, dataset), (run_frame, curve_frame) in prepared.items():
        if run_frame.height == 0:
            continue
        written = write_partition(dest, run_frame, curve_frame)
        report.runs_imported += written
        report.runs_unchanged += run_frame.height - written
        report.datasets.append((version, dataset))
    refresh_array_views(dest)


def _group(runs: Iterable[ImportedRun]) -> dict[tuple[str, str], list[ImportedRun]]:
    groups: dict[tuple[str, str], list[ImportedRun]] = {}
    keys: dict[tuple[str, str], str] = {}
    ids: dict[str, str] = {}
    for run in runs:
        run_id = run.fields["run_id"]
        if run_id in ids:
            raise ImportSourceError(
                f"source runs '{ids[run_id]}' and '{run.source_id}' both map to run id '{run_id}'; "
                "rename one of them in the source"
            )
        ids[run_id] = run.source_id
        key = (run.fields["dataset_version"], run.fields["dataset"])
        if keys.setdefault(key, run.dataset_key) != run.dataset_key:
            raise ImportSourceError(
                f"dataset keys '{keys[key]}' and '{run.dataset_key}' of version '{key[0]}' both end in "
                f"'{key[1]}', and the store names a dataset by that last component; rename one in the source"
            )
        groups.setdefault(key, []).append(run)
    return groups


def _frames(runs: list[ImportedRun], report: ImportReport) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(runs, curves) frames of one partition, without the runs that break the schema."""
    rows = [complete_run(r.fields, r.fields["n_epochs"]) for r in runs]
    run_frame = pl.from_arrow(pa.Table.from_pylist(rows, schema=RUNS_SCHEMA))
    curve_frame = pl.from_arrow(_curve_table(runs))
    assert isinstance(run_frame, pl.DataFrame) and isinstance(curve_frame, pl.DataFrame)
    problems = validate(run_frame, curve_frame, "import")
    if not problems:
        return run_frame, curve_frame
    if any(p.run_id is None for p in problems):
        raise ValidationError(problems)
    by_id = {r.fields["run_id"]: r.source_id for r in runs}
    bad: dict[str, str] = {}
    for p in problems:
        assert p.run_id is not None
        bad.setdefault(p.run_id, f"breaks the store schema: {p.message}")
    for run_id, reason in bad.items():
        report.skip(by_id[run_id], reason)
    keep = ~pl.col("run_id").is_in(list(bad))
    return run_frame.filter(keep), curve_frame.filter(keep)


def _curve_table(runs: list[ImportedRun]) -> pa.Table:
    columns: dict[str, list[Any]] = {name: [] for name in CURVES_SCHEMA.names}
    for run in runs:
        n = run.fields["n_epochs"]
        columns["run_id"] += [run.fields["run_id"]] * n
        columns["epoch"] += list(range(1, n + 1))
        for name in CURVE_VALUE_COLUMNS[1:]:
            columns[name] += run.curve.get(name, [None] * n)
    return pa.Table.from_pydict(columns, schema=CURVES_SCHEMA)


def _open_store(dest: str | Path, metadata: StoreMetadata) -> None:
    """Create the store, or add this import's deviations and generator entries (dataset keys, ...) to an existing
    store's metadata."""
    existing = create_store(dest, metadata)
    missing = tuple(d for d in metadata.deviations if d not in existing.deviations)
    generator = merge_generator(existing.generator, metadata.generator)
    if missing or generator != existing.generator:
        update_metadata(dest, replace(existing, deviations=existing.deviations + missing, generator=generator))


def source_order(keys: Iterable[str]) -> list[str]:
    """The distinct dataset keys in order of first appearance."""
    return list(dict.fromkeys(keys))
