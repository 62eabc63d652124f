"""Reading and writing the store's Parquet files, with errors that name the file and the fix."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from metagen.store.errors import CorruptFileError, SchemaVersionError, ValidationError
from metagen.store.layout import temp_path
from metagen.store.records import split_run_tables
from metagen.store.schema import (
    CURVES_SCHEMA,
    METADATA_KEY,
    RUN_FILE_SCHEMA,
    RUNS_SCHEMA,
    SCHEMA_VERSION,
    Problem,
    check_arrow_schema,
    validate,
)

COMPRESSION = "zstd"


def write_temp(table: pa.Table, final: Path) -> Path:
    """Write ``table`` (with the schema-version metadata) to a fsync'ed temp file beside ``final``."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(final)
    meta = dict(table.schema.metadata or {})
    meta[METADATA_KEY] = str(SCHEMA_VERSION).encode()
    table = table.replace_schema_metadata(meta)
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f, compression=COMPRESSION, use_dictionary=_string_columns(table.schema))
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _string_columns(schema: pa.Schema) -> list[str]:
    """Dictionary-encode strings only: floats do not repeat, and plain floats decode faster."""
    return [f.name for f in schema if pa.types.is_string(f.type)]


def corrupt_fix(path: Path) -> str:
    """What to do about an unreadable file."""
    if "compacted" in path.parts:
        return (
            f"the compacted part {path.name} is damaged; restore it from a backup, or move it aside and "
            "re-import or re-run the runs it held (`validate` lists what is left)"
        )
    return (
        f"move {path.name} aside (or delete it) and re-run the job that produced run '{path.stem}'; "
        "the store's writer never leaves partial files, so this one was damaged after it was written"
    )


def read_checked(path: Path, expected: pa.Schema) -> pa.Table:
    """Read a store file after checking it is readable Parquet of this schema version and layout."""
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as e:
        raise CorruptFileError(f"{path}: not readable as Parquet ({e}); {corrupt_fix(path)}") from e
    problems = check_arrow_schema(schema, expected, str(path))
    if problems:
        if any("schema version" in p.message for p in problems):
            raise SchemaVersionError(str(problems[0]))
        raise ValidationError(problems)
    try:
        return pq.read_table(path, schema=schema)
    except (OSError, pa.ArrowException) as e:
        raise CorruptFileError(f"{path}: damaged Parquet data ({e}); {corrupt_fix(path)}") from e


def read_run_file(path: Path, check: bool = True) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(runs, curves) of a loose run file; with ``check``, the content is validated too."""
    runs, curves = split_run_tables(read_checked(path, RUN_FILE_SCHEMA))
    if check:
        problems = validate(runs, curves, str(path)) + _check_name(path, runs)
        if problems:
            raise ValidationError(problems)
    return runs, curves


def _check_name(path: Path, runs: pl.DataFrame) -> list[Problem]:
    if runs.height == 1 and runs["run_id"][0] == path.stem:
        return []
    return [Problem(str(path), "a run file must hold exactly the run its name says", "rename or rewrite the file")]


def read_part(runs_path: Path, curves_path: Path, check: bool = False) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(runs, curves) of a compacted part."""
    runs = pl.from_arrow(read_checked(runs_path, RUNS_SCHEMA))
    curves = pl.from_arrow(read_checked(curves_path, CURVES_SCHEMA))
    assert isinstance(runs, pl.DataFrame) and isinstance(curves, pl.DataFrame)
    if check:
        problems = validate(runs, curves, str(runs_path.parent))
        if problems:
            raise ValidationError(problems)
    return runs, curves
