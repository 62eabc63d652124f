"""Bad input and faults: each gets a clear error naming the file and the fix, or is cleaned safely."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from metagen.store import CorruptFileError, SchemaVersionError, StoreReader, compact, write_run
from metagen.store.inspect import validate_store
from metagen.store.layout import STORE_FILE, loose_path, temp_path
from metagen.store.schema import METADATA_KEY, SCHEMA_VERSION
from tests.factories import make_curve, make_run


def test_truncated_file_is_named_with_a_fix(store: Path) -> None:
    write_run(store, make_run(), make_curve())
    path = loose_path(store, "micro", "PNU", "r1")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CorruptFileError, match=r"r1\.parquet.*re-run the job"):
        StoreReader(store).curve_arrays("PNU", "micro")
    path.write_bytes(b"not parquet at all")
    with pytest.raises(CorruptFileError, match=r"r1\.parquet"):
        StoreReader(store).scan_runs().collect()


def test_corrupt_compacted_part_is_named(store: Path) -> None:
    write_run(store, make_run(), make_curve())
    compact(store)
    part = next((store / "compacted").rglob("*-curves.parquet"))
    part.write_bytes(b"garbage")
    with pytest.raises(CorruptFileError, match=r"curves\.parquet"):
        StoreReader(store).curve_arrays("PNU", "micro")


def test_other_schema_version_file(store: Path) -> None:
    write_run(store, make_run(), make_curve())
    path = loose_path(store, "micro", "PNU", "r1")
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({METADATA_KEY: b"99"}), path)
    with pytest.raises(SchemaVersionError, match="schema version 99"):
        StoreReader(store).scan_runs().collect()


def test_other_schema_version_store(store: Path) -> None:
    meta = json.loads((store / STORE_FILE).read_text())
    (store / STORE_FILE).write_text(json.dumps({**meta, "schema_version": 7}))
    with pytest.raises(SchemaVersionError, match="schema version 7"):
        StoreReader(store)


def _write_raw(store: Path, run: dict, curve: list[dict]) -> None:
    """A file written by hand, bypassing the writer's validation (as a buggy tool might)."""
    from metagen.store.records import run_file_table

    path = loose_path(store, run["dataset_version"], run["dataset"], run["run_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    table = run_file_table(run, curve)
    pq.write_table(table.replace_schema_metadata({METADATA_KEY: str(SCHEMA_VERSION).encode()}), path)


def test_validate_reports_all_problems_of_a_store(store: Path) -> None:
    write_run(store, make_run("good"), make_curve())
    bad_epochs = make_curve(3)
    bad_epochs[2]["epoch"] = 1
    _write_raw(store, make_run("nonmono"), bad_epochs)
    pct = make_curve(2)
    pct[1]["eval_top1"] = 87.5
    _write_raw(store, make_run("percent"), pct)
    negative = make_curve(2)
    negative[0]["eval_time"] = -3.0
    _write_raw(store, make_run("negtime"), negative)
    trunc = loose_path(store, "micro", "PNU", "trunc")
    trunc.write_bytes(loose_path(store, "micro", "PNU", "good").read_bytes()[:50])
    temp_path(loose_path(store, "micro", "PNU", "killed")).write_bytes(b"half a file")
    problems = validate_store(store)
    text = "\n".join(map(str, problems))
    assert "nonmono" in text and "not 1, 2, 3" in text
    assert "percent" in text and "divide percentages by 100" in text
    assert "negtime" in text and "eval_time is negative" in text
    assert "trunc.parquet" in text and "not readable as Parquet" in text
    assert "temp file left by a writer" in text and "compact" in text
    assert sum(p.severity == "error" for p in problems) == 4
    assert sum(p.severity == "warning" for p in problems) == 1


def test_conflicting_copies_are_reported_and_kept(store: Path) -> None:
    write_run(store, make_run(), make_curve())
    compact(store)
    _write_raw(store, make_run(), make_curve(start=0.3))  # same id, other numbers, e.g. copied from elsewhere
    problems = validate_store(store)
    assert any("different content" in p.message for p in problems)
    with pytest.raises(Exception, match="different content"):
        StoreReader(store).curve_arrays("PNU", "micro")
    report = compact(store)
    assert any("different content" in p.message for p in report.problems)
    assert loose_path(store, "micro", "PNU", "r1").exists()  # nothing is deleted that lost a conflict


def test_file_in_the_wrong_partition(store: Path) -> None:
    _write_raw(store, make_run(), make_curve())
    src = loose_path(store, "micro", "PNU", "r1")
    dst = loose_path(store, "mini", "PNU", "r1")
    dst.parent.mkdir(parents=True)
    src.rename(dst)
    assert any("stored under mini/PNU" in p.message for p in validate_store(store))


def test_unknown_columns_in_a_file(store: Path) -> None:
    write_run(store, make_run(), make_curve())
    path = loose_path(store, "micro", "PNU", "r1")
    table = pq.read_table(path)
    table = table.append_column("surprise", pa.array([1]))
    pq.write_table(table, path)
    assert any("unknown column 'surprise'" in p.message for p in validate_store(store))
