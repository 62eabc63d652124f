"""Writing runs: atomic files, idempotent rewrites, conflicts, bulk parts and compaction."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from metagen.store import RunConflictError, StoreReader, ValidationError, compact, layout, write_partition, write_run
from metagen.store.inspect import validate_store
from metagen.store.layout import compacted_parts, loose_files, loose_path, temp_files
from metagen.store.records import run_file_table, split_run_tables
from tests.factories import make_curve, make_run


def test_write_then_read_round_trip(store: Path) -> None:
    assert write_run(store, make_run(), make_curve()) == "written"
    arrays = StoreReader(store).curve_arrays("PNU", "micro")
    np.testing.assert_allclose(arrays.values[0], [0.1, 0.2, 0.3, 0.4, 0.5], rtol=1e-6)
    np.testing.assert_allclose(arrays.cost[0], [2.0] * 5, rtol=1e-6)
    assert list(arrays.run_ids) == ["r1"] and temp_files(store) == []


def test_same_content_is_a_no_op_other_content_an_error(store: Path) -> None:
    write_run(store, make_run(), make_curve())
    path = loose_path(store, "micro", "PNU", "r1")
    before = path.read_bytes()
    assert write_run(store, make_run(), make_curve()) == "unchanged"
    with pytest.raises(RunConflictError, match="r1"):
        write_run(store, make_run(), make_curve(n=4))
    with pytest.raises(RunConflictError):
        write_run(store, make_run(lr=0.01), make_curve())
    assert path.read_bytes() == before


def test_invalid_run_is_rejected_and_nothing_written(store: Path) -> None:
    curve = make_curve()
    curve[0]["eval_top1"] = 42.0
    with pytest.raises(ValidationError, match="divide percentages by 100"):
        write_run(store, make_run(), curve)
    with pytest.raises(ValidationError, match="unknown run field"):
        write_run(store, make_run(learning_rate=1.0), curve)
    assert loose_files(store) == [] and temp_files(store) == []


def test_killed_writer_leaves_no_partial_run(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def die(tmp: Path, final: Path) -> bool:
        raise KeyboardInterrupt  # the job dies between writing its temp file and publishing it

    monkeypatch.setattr("metagen.store.writer.publish", die)
    with pytest.raises(KeyboardInterrupt):
        write_run(store, make_run(), make_curve())
    monkeypatch.undo()
    assert loose_files(store) == [] and len(temp_files(store)) == 1
    assert StoreReader(store).datasets().height == 0  # readers never see temp files
    assert write_run(store, make_run(), make_curve()) == "written"  # the relaunched job succeeds
    assert compact(store).temp_files_removed == 0  # its writer (this process) is alive and it is fresh
    assert compact(store, stale_temp_after_s=0.0).temp_files_removed == 1
    assert temp_files(store) == []


def test_compact_merges_and_keeps_data(store: Path) -> None:
    for i in range(5):
        write_run(store, make_run(f"r{i}", dataset="A" if i % 2 else "B"), make_curve(start=0.1 + i / 100))
    before = StoreReader(store).scan_curves().collect().sort("run_id", "epoch")
    report = compact(store)
    assert (report.runs_compacted, report.loose_files_removed, report.partitions) == (5, 5, 2)
    assert loose_files(store) == [] and len(compacted_parts(store)) == 2
    after = StoreReader(store).scan_curves().collect().sort("run_id", "epoch")
    assert after.equals(before)
    assert compact(store).partitions == 0  # nothing left to do
    assert write_run(store, make_run("r1", dataset="A"), make_curve(start=0.11)) == "unchanged"
    with pytest.raises(RunConflictError, match="compacted"):
        write_run(store, make_run("r1", dataset="A"), make_curve(start=0.5))


def test_compact_again_merges_new_runs_into_one_part(store: Path) -> None:
    write_run(store, make_run("r1"), make_curve())
    compact(store)
    write_run(store, make_run("r2"), make_curve())
    compact(store)
    assert len(compacted_parts(store)) == 1
    assert sorted(StoreReader(store).scan_runs().collect()["run_id"]) == ["r1", "r2"]


def test_killed_compaction_duplicates_collapse(store: Path) -> None:
    write_run(store, make_run("r1"), make_curve())
    runs, curves = split_run_tables(run_file_table(make_run("r1"), make_curve()))
    # A compaction killed after writing its part but before deleting the loose file:
    from metagen.store.writer import write_part

    write_part(store, "micro", "PNU", runs, curves)
    reader = StoreReader(store)
    assert reader.scan_runs().collect().height == 1
    assert reader.scan_curves().collect().height == 5
    assert reader.curve_arrays("PNU", "micro").values.shape == (1, 5)
    # ...and a part whose runs file never got written (killed between the two files) is ignored.
    orphan = compacted_parts(store)[0][1].with_name("part-x-curves.parquet")
    orphan.write_bytes(compacted_parts(store)[0][1].read_bytes())
    assert StoreReader(store).scan_curves().collect().height == 5
    compact(store)
    assert not orphan.exists() and loose_files(store) == [] and len(compacted_parts(store)) == 1


def test_write_partition_skips_identical_and_rejects_conflicts(store: Path) -> None:
    runs, curves = zip(*(split_run_tables(run_file_table(make_run(f"r{i}"), make_curve())) for i in range(3)),
                       strict=True)  # fmt: skip
    runs_df, curves_df = pl.concat(runs), pl.concat(curves)
    assert write_partition(store, runs_df, curves_df) == 3
    assert write_partition(store, runs_df, curves_df) == 0
    with pytest.raises(RunConflictError):
        write_partition(store, runs_df, curves_df.with_columns(pl.col("eval_top1") * 0.5))


def test_store_kind_cannot_change(tmp_path: Path) -> None:
    layout.create_store(tmp_path / "s", layout.StoreMetadata(name="x", synthetic=True))
    with pytest.raises(Exception, match="synthetic store"):
        layout.create_store(tmp_path / "s", layout.StoreMetadata(name="x"))


def test_synthetic_and_measured_runs_never_mix(tmp_path: Path, store: Path) -> None:
    """write_run / write_partition refuse a run whose source does not fit the store; validate reports one."""
    with pytest.raises(ValidationError, match="synthetic run in a measured store"):
        write_run(store, make_run(source="synthetic"), make_curve())
    runs, curves = split_run_tables(run_file_table(make_run(source="synthetic"), make_curve()))
    with pytest.raises(ValidationError, match="synthetic run in a measured store"):
        write_partition(store, runs, curves)
    assert loose_files(store) == [] and compacted_parts(store) == []
    synth = tmp_path / "synth"
    layout.create_store(synth, layout.StoreMetadata(name="s", synthetic=True))
    with pytest.raises(ValidationError, match="non-synthetic run in a synthetic store"):
        write_run(synth, make_run(source="metagen"), make_curve())
    assert write_run(synth, make_run(source="synthetic"), make_curve()) == "written"
    # a synthetic run that got into a measured store some other way (here: the store's flag was changed)
    layout.update_metadata(synth, replace(layout.read_metadata(synth), synthetic=False))
    problems = validate_store(synth)
    assert [(p.severity, p.run_id) for p in problems] == [("error", "r1")]
    assert "synthetic run in a measured store" in problems[0].message
