"""Writing runs into a store: one atomic file per run, bulk parts for importers, and compaction.

Safe under many concurrent jobs: a run file appears whole or not at all (temp file + hard link),
the same run written twice with the same content is a no-op and with other content an error.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from metagen.locks import exclusive_lock
from metagen.store.errors import CompactionLockedError, RunConflictError, StoreError, ValidationError
from metagen.store.files import read_checked, read_part, read_run_file, write_temp
from metagen.store.layout import (
    COMPACTED_DIR,
    LOOSE_DIR,
    check_store_writable,
    compacted_parts,
    host_tag,
    loose_files,
    loose_path,
    new_part_token,
    orphan_curve_parts,
    parse_partition,
    partition_dir,
    publish,
    read_metadata,
    temp_files,
    temp_owner,
)
from metagen.store.merge import Source, merge_sources
from metagen.store.records import CurveLike, conform, kind_problems, run_file_table, same_content, split_run_tables
from metagen.store.schema import CURVES_SCHEMA, RUNS_SCHEMA, Problem, validate

WriteOutcome = Literal["written", "unchanged"]


def write_run(root: str | Path, run: Mapping[str, Any], curve: CurveLike) -> WriteOutcome:
    """Store one run and its curve as one Parquet file, atomically.

    Args:
        root: the store (it must exist; see :func:`metagen.store.layout.create_store`).
        run: the run's fields (columns of the runs table; defaults are filled in).
        curve: its epochs (rows with the curves table's columns, without ``run_id``).

    Returns:
        ``"written"``, or ``"unchanged"`` when the same content was already stored.

    Raises:
        ValidationError: the run breaks the schema, or its ``source`` does not fit the store's kind
            (synthetic vs. measured); all problems are listed.
        RunConflictError: the run id is stored with other content.
    """
    meta = read_metadata(root)
    table = run_file_table(run, curve)
    runs, curves = split_run_tables(table)
    run_id, version, dataset = runs["run_id"][0], runs["dataset_version"][0], runs["dataset"][0]
    problems = validate(runs, curves, "<new run>") + kind_problems(runs, meta.synthetic, str(root))
    if problems:
        raise ValidationError(problems)
    final = loose_path(root, version, dataset, run_id)
    if _already_stored(root, final, runs, curves):
        return "unchanged"
    tmp = write_temp(table, final)
    if publish(tmp, final):
        return "written"
    return "unchanged" if _already_stored(root, final, runs, curves) else "written"


def _already_stored(root: str | Path, final: Path, runs: pl.DataFrame, curves: pl.DataFrame) -> bool:
    """True if the run is stored with the same content; RunConflictError if with other content."""
    run_id = runs["run_id"][0]
    candidates: list[tuple[str, pl.DataFrame, pl.DataFrame]] = []
    if final.exists():
        candidates.append((str(final), *read_run_file(final, check=False)))
    version, dataset = runs["dataset_version"][0], runs["dataset"][0]
    for runs_path, curves_path in compacted_parts(root, version, dataset):
        # Every job's write passes here: read the part's run ids only, the rest only on a hit.
        if run_id not in read_checked(runs_path, RUNS_SCHEMA).column("run_id").to_pylist():
            continue
        r, c = read_part(runs_path, curves_path)
        mine = pl.col("run_id") == run_id
        candidates.append((str(runs_path), r.filter(mine), c.filter(mine)))
    for where, r, c in candidates:
        if not same_content(runs, curves, r, c):
            raise RunConflictError(
                f"run '{run_id}' is already stored in {where} with different content; a run id must name "
                "one result: give the new run another id (e.g. another seed), or delete the old file if it is wrong"
            )
    return bool(candidates)


def write_partition(root: str | Path, runs: pl.DataFrame, curves: pl.DataFrame) -> int:
    """Store many runs of one (version, dataset) as a compacted part (for importers and generators).

    Runs already stored with the same content are skipped; with other content it is an error.
    Returns the number of runs written.
    """
    meta = read_metadata(root)
    runs = conform(runs, RUNS_SCHEMA, "runs")
    curves = conform(curves, CURVES_SCHEMA, "curves")
    keys = runs.select("dataset_version", "dataset").unique()
    if keys.height != 1:
        raise StoreError(f"write_partition takes runs of one version and dataset, got {keys.height} pairs")
    version, dataset = keys.row(0)
    problems = validate(runs, curves, f"{version}/{dataset}") + kind_problems(runs, meta.synthetic, str(root))
    if problems:
        raise ValidationError(problems)
    existing = _partition_sources(root, version, dataset, include_loose=True)
    if existing:
        merged = merge_sources([*existing, Source("<new>", runs, curves)])
        if merged.conflicts:
            raise RunConflictError("\n".join(str(p) for p in merged.conflicts[:20]))
        stored = set(pl.concat([s.runs.select("run_id") for s in existing])["run_id"].to_list())
        runs = runs.filter(~pl.col("run_id").is_in(stored))
        curves = curves.filter(~pl.col("run_id").is_in(stored))
    if runs.height:
        write_part(root, version, dataset, runs, curves)
    return runs.height


def write_part(root: str | Path, version: str, dataset: str, runs: pl.DataFrame, curves: pl.DataFrame) -> None:
    """Write one compacted part: curves first, then runs (the runs file commits the part)."""
    runs = runs.sort("run_id")
    curves = curves.sort("run_id", "epoch")
    directory = partition_dir(root, COMPACTED_DIR, version, dataset)
    token = new_part_token()
    curves_path = directory / f"part-{token}-curves.parquet"
    runs_path = directory / f"part-{token}-runs.parquet"
    for df, schema, path in ((curves, CURVES_SCHEMA, curves_path), (runs, RUNS_SCHEMA, runs_path)):
        table = pa.Table.from_batches(df.to_arrow().cast(schema).to_batches(), schema=schema)
        if not publish(write_temp(table, path), path):
            raise StoreError(f"{path} exists already; part tokens must be unique")


def _partition_sources(root: str | Path, version: str, dataset: str, include_loose: bool) -> list[Source]:
    sources = [Source(str(r), *read_part(r, c)) for r, c in compacted_parts(root, version, dataset)]
    if include_loose:
        directory = partition_dir(root, LOOSE_DIR, version, dataset)
        sources += [Source(str(p), *read_run_file(p, check=False)) for p in sorted(directory.glob("*.parquet"))]
    return sources


# --------------------------------------------------------------------------------------------
# Compaction and cleaning
# --------------------------------------------------------------------------------------------


@dataclass
class CompactReport:
    """What ``compact`` did: runs moved, files removed, and problems left for a human."""

    partitions: int = 0
    runs_compacted: int = 0
    loose_files_removed: int = 0
    parts_replaced: int = 0
    temp_files_removed: int = 0
    problems: list[Problem] = field(default_factory=list)


@contextmanager
def store_lock(root: str | Path) -> Iterator[None]:
    """Exclusive lock for maintenance of a store (compact); fails fast if another holds it."""
    path = Path(root) / ".compact.lock"
    with exclusive_lock(path) as locked:
        if not locked:
            raise CompactionLockedError(f"another `compact` is running on {root} (lock {path}); wait for it to finish")
        yield


def compact(root: str | Path, stale_temp_after_s: float = 600.0) -> CompactReport:
    """Merge loose run files into one compacted part per (version, dataset).

    Safe to run while jobs write: files that appear during compaction stay loose for the next
    run, and a killed compaction leaves only duplicates with identical content, which readers and
    the next ``compact`` collapse. Unreadable or conflicting files are reported and left in place.

    Raises:
        StoreNotWritableError: the store cannot be written (checked before anything is touched).
    """
    read_metadata(root)
    check_store_writable(root)
    report = CompactReport()
    with store_lock(root):
        report.temp_files_removed = clean_temp_files(root, stale_temp_after_s)
        for orphan in orphan_curve_parts(root):
            orphan.unlink(missing_ok=True)
        partitions = {p.parent for p in loose_files(root)}
        parts_by_dir: dict[Path, list[tuple[Path, Path]]] = {}
        for r, c in compacted_parts(root):
            parts_by_dir.setdefault(r.parent, []).append((r, c))
        partitions |= {
            partition_dir(root, LOOSE_DIR, *parse_partition(d)) for d, ps in parts_by_dir.items() if len(ps) > 1
        }
        for loose_dir in sorted(partitions):
            version, dataset = parse_partition(loose_dir)
            _compact_partition(root, version, dataset, parts_by_dir, report)
        for directory, parts in sorted(parts_by_dir.items()):  # parts left as they are: report damaged ones
            if partition_dir(root, LOOSE_DIR, *parse_partition(directory)) not in partitions:
                report.problems.extend(p for r, c in parts for p in (*_damaged(r), *_damaged(c)))
        refresh_array_views(root)
    return report


def _damaged(path: Path) -> list[Problem]:
    """A problem if the Parquet footer of a part file cannot be read (a cheap check; ``validate`` reads all)."""
    try:
        pq.read_metadata(path)
    except (OSError, ValueError) as e:
        return [
            Problem(str(path), f"damaged part: not readable as Parquet ({e})",
                    "restore it from a backup, or move its part files aside and re-import or re-run its runs")
        ]  # fmt: skip
    return []


def refresh_array_views(root: str | Path) -> list[str]:
    """Rebuild the dense-array view of every fully compacted version; returns those versions."""
    from metagen.store.reader import StoreReader  # the reader builds views from what it reads

    reader = StoreReader(root, check=False)
    return [v for v in reader.versions() if reader.write_array_view(v)]


def _compact_partition(
    root: str | Path,
    version: str,
    dataset: str,
    parts_by_dir: dict[Path, list[tuple[Path, Path]]],
    report: CompactReport,
) -> None:
    parts = parts_by_dir.get(partition_dir(root, COMPACTED_DIR, version, dataset), [])
    sources: list[Source] = []
    for r, c in parts:
        sources.append(Source(str(r), *read_part(r, c)))
    loose: list[Path] = []
    for path in sorted(partition_dir(root, LOOSE_DIR, version, dataset).glob("*.parquet")):
        try:
            sources.append(Source(str(path), *read_run_file(path, check=True)))
            loose.append(path)
        except StoreError as e:
            problems = e.problems if isinstance(e, ValidationError) else [Problem(str(path), str(e), "see message")]
            report.problems.extend(problems)
    merged = merge_sources(sources)
    report.problems.extend(merged.conflicts)
    if merged.runs.height == 0:
        return
    write_part(root, version, dataset, merged.runs, merged.curves)
    report.partitions += 1
    report.runs_compacted += merged.runs.height
    for r, c in parts:
        r.unlink(missing_ok=True)
        c.unlink(missing_ok=True)
        report.parts_replaced += 1
    for path in loose:
        if str(path) not in merged.rejected:
            path.unlink(missing_ok=True)
            report.loose_files_removed += 1


def clean_temp_files(root: str | Path, stale_after_s: float = 600.0) -> int:
    """Remove temp files of writers that are gone: dead pid on this host, or older than ``stale_after_s``.

    A writer finishes a run file in well under a second, so an old temp file is a leftover of a
    killed job and was never visible to readers; deleting it loses nothing.
    """
    host, now, removed = host_tag(), time.time(), 0
    for path in temp_files(root):
        owner = temp_owner(path)
        try:
            age = now - path.stat().st_mtime
        except FileNotFoundError:
            continue
        dead = owner is not None and owner[0] == host and not _pid_alive(owner[1])
        if dead or age > stale_after_s:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
