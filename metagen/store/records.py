"""Turning a run (a dict) and its curve (rows) into schema-typed tables, and back."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeAlias

import polars as pl
import pyarrow as pa

from metagen.store.errors import ValidationError
from metagen.store.schema import (
    CURVE_COLUMNS,
    CURVE_STRUCT,
    CURVES_SCHEMA,
    HYPERPARAMETERS,
    RUN_COLUMNS,
    RUN_FILE_SCHEMA,
    RUNS_SCHEMA,
    Problem,
    pipeline_id,
    polars_schema,
)

_RUN_NAMES = frozenset(c.name for c in RUN_COLUMNS)
_CURVE_NAMES = tuple(c.name for c in CURVE_COLUMNS)
_CURVE_ONLY_SCHEMA = pa.schema([c.field() for c in CURVE_COLUMNS])

CurveLike: TypeAlias = pl.DataFrame | pa.Table | Sequence[Mapping[str, Any]] | None


def split_hyperparameters(hps: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split hyperparameters into those with a schema column and the rest (for ``extra_hps``)."""
    known = {k: v for k, v in hps.items() if k in HYPERPARAMETERS}
    extra = {k: v for k, v in hps.items() if k not in HYPERPARAMETERS}
    return known, extra


def hyperparameters_of(run: Mapping[str, Any]) -> dict[str, Any]:
    """All hyperparameters of a run row: the schema columns plus ``extra_hps``."""
    hps = {k: run.get(k) for k in HYPERPARAMETERS}
    hps.update(json.loads(run.get("extra_hps") or "{}"))
    return hps


def complete_run(run: Mapping[str, Any], n_epochs: int) -> dict[str, Any]:
    """A full run row: defaults filled in (n_epochs, pipeline_id, extra_hps, created_at), unknown keys rejected."""
    unknown = sorted(set(run) - _RUN_NAMES)
    if unknown:
        raise ValidationError(
            [
                Problem(
                    "<run>",
                    f"unknown run field(s) {unknown}",
                    "put other hyperparameters into 'extra_hps' (see split_hyperparameters); "
                    f"allowed fields: {sorted(_RUN_NAMES)}",
                    run_id=run.get("run_id"),
                )
            ]
        )
    row = {c.name: run.get(c.name) for c in RUN_COLUMNS}
    if isinstance(row["extra_hps"], Mapping):
        row["extra_hps"] = json.dumps(row["extra_hps"], sort_keys=True)
    if row["extra_hps"] is None:
        row["extra_hps"] = "{}"
    if isinstance(row["package_versions"], Mapping):
        row["package_versions"] = json.dumps(row["package_versions"], sort_keys=True)
    if row["n_epochs"] is None:
        row["n_epochs"] = n_epochs
    if row["pipeline_id"] is None and row["model"] is not None:
        row["pipeline_id"] = pipeline_id(row["model"], hyperparameters_of(row))
    if row["created_at"] is None:
        row["created_at"] = datetime.now(UTC)
    return row


def curve_table(curve: CurveLike) -> pa.Table:
    """A curve as an Arrow table of the curve columns (no run_id), missing optional columns as NULL."""
    if curve is None:
        return _CURVE_ONLY_SCHEMA.empty_table()
    if isinstance(curve, pl.DataFrame):
        curve = curve.to_arrow()
    if isinstance(curve, pa.Table):
        names = set(curve.column_names)
        unknown = sorted(names - set(_CURVE_NAMES) - {"run_id"})
        _reject_unknown_curve_columns(unknown)
        cols = [
            curve.column(c.name).cast(c.type) if c.name in names else pa.nulls(curve.num_rows, c.type)
            for c in CURVE_COLUMNS
        ]
        return pa.Table.from_arrays(cols, schema=_CURVE_ONLY_SCHEMA)
    rows = list(curve)
    unknown = sorted({k for r in rows for k in r} - set(_CURVE_NAMES) - {"run_id"})
    _reject_unknown_curve_columns(unknown)
    return pa.Table.from_pylist([{k: r.get(k) for k in _CURVE_NAMES} for r in rows], schema=_CURVE_ONLY_SCHEMA)


def _reject_unknown_curve_columns(unknown: list[str]) -> None:
    if unknown:
        raise ValidationError(
            [Problem("<curve>", f"unknown curve column(s) {unknown}", f"use only {list(_CURVE_NAMES)}")]
        )


def run_file_table(run: Mapping[str, Any], curve: CurveLike) -> pa.Table:
    """The one-row table of a loose run file (run columns + ``curve`` list)."""
    ct = curve_table(curve)
    row = complete_run(run, ct.num_rows)
    try:
        runs = pa.Table.from_pylist([row], schema=RUNS_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise ValidationError(
            [Problem("<run>", f"a run field has the wrong type: {e}", "see metagen.store.schema", row["run_id"])]
        ) from e
    curve_list = pa.array([ct.to_struct_array().combine_chunks() if ct.num_rows else []], pa.list_(CURVE_STRUCT))
    return runs.append_column(RUN_FILE_SCHEMA.field("curve"), curve_list)


def split_run_tables(table: pa.Table) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Loose run-file rows -> (runs, curves) polars frames with the schema's columns and types."""
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    runs = df.drop("curve")
    curves = (
        df.select("run_id", "curve")
        .explode("curve")
        .drop_nulls("curve")
        .unnest("curve")
        .select(CURVES_SCHEMA.names)
        .cast(dict(polars_schema(CURVES_SCHEMA)))  # type: ignore[arg-type]
    )
    return runs, curves


def empty_frames() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Empty (runs, curves) frames with the schema's columns."""
    return pl.DataFrame(schema=polars_schema(RUNS_SCHEMA)), pl.DataFrame(schema=polars_schema(CURVES_SCHEMA))


COMPARE_IGNORED = ("created_at",)
"""Bookkeeping columns that do not count when deciding whether two writes of a run are the same."""


def same_content(a_runs: pl.DataFrame, a_curves: pl.DataFrame, b_runs: pl.DataFrame, b_curves: pl.DataFrame) -> bool:
    """Whether two versions of the same run(s) hold the same data (NaN equals NaN)."""
    ra = a_runs.drop(COMPARE_IGNORED).sort("run_id")
    rb = b_runs.drop(COMPARE_IGNORED).sort("run_id")
    ca = a_curves.sort("run_id", "epoch")
    cb = b_curves.sort("run_id", "epoch")
    return ra.equals(rb, null_equal=True) and ca.equals(cb, null_equal=True)


def conform(df: pl.DataFrame, schema: pa.Schema, table: str) -> pl.DataFrame:
    """``df`` with the schema's columns in order and types; absent nullable columns become NULL."""
    missing = [f.name for f in schema if f.name not in df.columns and not f.nullable]
    unknown = sorted(set(df.columns) - set(schema.names))
    if missing or unknown:
        raise ValidationError(
            [
                Problem(
                    f"<{table} table>",
                    f"missing required column(s) {missing}, unknown column(s) {unknown}",
                    f"use the columns of the {table} table in metagen.store.schema",
                )
            ]
        )
    target = polars_schema(schema)
    return df.select([pl.col(n).cast(t) if n in df.columns else pl.lit(None, t).alias(n) for n, t in target.items()])


def kind_problems(runs: pl.DataFrame, synthetic: bool, where: str) -> list[Problem]:
    """Runs whose ``source`` does not fit the store's kind: synthetic runs never mix with measured ones.

    A synthetic store (``store.json`` ``synthetic: true``) holds only ``source = synthetic`` runs; a
    measured store holds none.
    """
    wrong = runs.filter((pl.col("source") == "synthetic") != synthetic)
    if synthetic:
        msg, fix = "a non-synthetic run in a synthetic store", "write measured or imported runs into a measured store"
    else:
        msg, fix = "a synthetic run in a measured store", "write synthetic runs into a synthetic store"
    return [Problem(where, f"{msg} (source={s!r})", fix, r) for r, s in wrong.select("run_id", "source").iter_rows()]
