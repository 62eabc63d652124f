"""Upgrading a store of schema version 1: new columns filled where known, files rewritten, idempotent."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from metagen.store import SchemaVersionError, StoreReader, compact, write_run
from metagen.store.errors import StoreError
from metagen.store.inspect import validate_store
from metagen.store.layout import STORE_FILE, loose_files
from metagen.store.schema import IMAGENET_RECIPE, METADATA_KEY
from metagen.store.upgrade import V1_ADDED_COLUMNS, upgrade_store
from tests.factories import make_curve, make_run


def _downgrade_to_v1(store: Path) -> None:
    """Rewrite every file as schema version 1 wrote it: without the version-2 columns, tagged 1."""
    files = loose_files(store) + sorted((store / "compacted").rglob("*.parquet"))
    for path in files:
        table = pq.read_table(path)
        table = table.drop_columns([c for c in V1_ADDED_COLUMNS if c in table.column_names])
        pq.write_table(table.replace_schema_metadata({METADATA_KEY: b"1"}), path)
    meta = json.loads((store / STORE_FILE).read_text())
    (store / STORE_FILE).write_text(json.dumps({**meta, "schema_version": 1}))


def test_a_version_1_store_is_upgraded_in_place_and_reads_again(store: Path) -> None:
    write_run(store, make_run("own"), make_curve())
    write_run(store, make_run("imported", source="import-quicktune"), make_curve())
    compact(store)
    write_run(store, make_run("loose"), make_curve(3))
    _downgrade_to_v1(store)
    with pytest.raises(SchemaVersionError, match=r"metagen\.store upgrade"):
        StoreReader(store).scan_runs().collect()
    report = upgrade_store(store)
    assert (report.from_version, report.to_version, report.files_rewritten) == (1, 2, 3)  # part: 2 files; 1 loose
    assert [p for p in validate_store(store) if p.severity == "error"] == []
    runs = {r["run_id"]: r for r in StoreReader(store).scan_runs().collect().iter_rows(named=True)}
    for rid in ("own", "loose"):  # metagen's v1 runner always used timm's ImageNet recipe
        assert {k: runs[rid][k] for k in IMAGENET_RECIPE} == IMAGENET_RECIPE
    assert runs["imported"]["hflip"] is None and runs["own"]["dataset_fingerprint"] is None
    assert runs["own"]["time_clock"] == "wall" and runs["imported"]["time_clock"] is None
    assert upgrade_store(store).files_rewritten == 0


def test_upgrade_refuses_a_non_store_and_an_unknown_version(tmp_path: Path, store: Path) -> None:
    with pytest.raises(StoreError, match="not a learning-curve store"):
        upgrade_store(tmp_path / "nothing")
    meta = json.loads((store / STORE_FILE).read_text())
    (store / STORE_FILE).write_text(json.dumps({**meta, "schema_version": 9}))
    with pytest.raises(StoreError, match="upgrades version 1"):
        upgrade_store(store)
