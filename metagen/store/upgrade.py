"""Rewriting a store of an older schema version in the current one: ``upgrade_store``.

Version 1 -> 2 adds the run columns of the train recipe, the transforms as run, the clock of the
epoch times and the dataset fingerprint (see :data:`metagen.store.schema.RECIPE_COLUMNS`). What
version 1 did not record is filled in only where it is known: runs that metagen's own runner wrote
(``source = metagen``) always trained with timm's ImageNet recipe (crop scale 0.08, flip 0.5, jitter
0.4) and timed epochs by the wall clock, so they get those; every other new value stays NULL (unknown).
Each file is replaced atomically (temp file + rename), so an interrupted upgrade leaves every file
either old or new, and running it again finishes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from metagen.store.errors import CorruptFileError, StoreError
from metagen.store.files import corrupt_fix, write_temp
from metagen.store.layout import (
    compacted_parts,
    loose_files,
    metadata_fields,
    metadata_from_fields,
    update_metadata,
)
from metagen.store.schema import (
    IMAGENET_RECIPE,
    METADATA_KEY,
    RECIPE,
    RUN_FILE_SCHEMA,
    RUNS_SCHEMA,
    SCHEMA_VERSION,
)

V1_ADDED_COLUMNS = ("time_clock", "dataset_fingerprint", "crop_scale_min", "hflip", "color_jitter", "train_transforms",
                    "eval_transforms")  # fmt: skip
"""Run columns that schema version 2 added."""


@dataclass(frozen=True)
class UpgradeReport:
    """What :func:`upgrade_store` did: files rewritten and the versions involved."""

    files_rewritten: int
    from_version: int
    to_version: int


def _file_version(path: Path) -> int:
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException) as e:
        raise CorruptFileError(f"{path}: not readable as Parquet ({e}); {corrupt_fix(path)}") from e
    return int(meta.get(METADATA_KEY, b"0"))


def _upgrade_runs_table(table: pa.Table, target: pa.Schema) -> pa.Table:
    """A version-1 runs table (or run-file table) with the version-2 columns, in ``target``'s order."""
    n = table.num_rows
    own = [s == "metagen" for s in table.column("source").to_pylist()]
    columns = {}
    for f in target:
        if f.name in table.column_names:
            columns[f.name] = table.column(f.name)
        elif f.name in RECIPE:
            columns[f.name] = pa.array([IMAGENET_RECIPE[f.name] if o else None for o in own], f.type)
        elif f.name == "time_clock":  # metagen's v1 runner timed epochs by the wall clock
            columns[f.name] = pa.array(["wall" if o else None for o in own], f.type)
        elif f.name in V1_ADDED_COLUMNS:
            columns[f.name] = pa.nulls(n, f.type)
        else:
            raise StoreError(f"cannot upgrade: column {f.name!r} is neither in the file nor added by version 2")
    return pa.table(columns, schema=target)


def upgrade_store(root: str | Path) -> UpgradeReport:
    """Rewrite every file of the store at ``root`` in the current schema version (a no-op when current).

    Raises:
        StoreError: ``root`` is not a store, or it was written by a newer or unknown schema version.
        CorruptFileError: a file cannot be read (nothing is changed for it; fix it and run again).
    """
    d = metadata_fields(root)
    version = int(d.get("schema_version", 0))
    if version == SCHEMA_VERSION:
        return UpgradeReport(0, version, version)
    if version != 1:
        raise StoreError(
            f"{root} has schema version {version}; this code upgrades version 1 to {SCHEMA_VERSION} only "
            "(a newer version needs a newer metagen)"
        )
    rewritten = 0
    files: list[tuple[Path, pa.Schema]] = [(p, RUN_FILE_SCHEMA) for p in loose_files(root)]
    files += [(runs, RUNS_SCHEMA) for runs, _ in compacted_parts(root)]
    for file, target in files:
        if _file_version(file) == SCHEMA_VERSION:
            continue  # done by an earlier, interrupted upgrade
        table = _upgrade_runs_table(pq.read_table(file), target)
        os.replace(write_temp(table, file), file)
        rewritten += 1
    for _runs, curves in compacted_parts(root):  # curves are unchanged; only their version tag moves on
        if _file_version(curves) != SCHEMA_VERSION:
            os.replace(write_temp(pq.read_table(curves), curves), curves)
            rewritten += 1
    update_metadata(root, replace(metadata_from_fields(d), schema_version=SCHEMA_VERSION))
    from metagen.store.writer import refresh_array_views

    refresh_array_views(root)  # the derived dense-array views are token-checked against the rewritten parts
    return UpgradeReport(rewritten, version, SCHEMA_VERSION)
