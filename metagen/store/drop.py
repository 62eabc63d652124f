"""Moving runs out of a store into a backup store (``python -m metagen.store drop``).

For runs that must be measured again, e.g. after their pretrained weights were replaced: the runs whose
``pretrained_source`` starts with one of the given prefixes move, with their curves, into a backup store
(created with the source's metadata if missing), so nothing is lost; the sweep then trains them again
under the same run ids. Order, safe against a kill at any point: the backup is written first (a rerun
skips what it holds already), then each partition's kept runs become one new compacted part, then the
old parts are removed (a kill in between leaves duplicates with identical content, which readers and
``compact`` collapse).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from metagen.store.errors import StoreError
from metagen.store.files import read_part
from metagen.store.layout import (
    check_store_writable,
    compacted_parts,
    create_store,
    loose_files,
    parse_partition,
    read_metadata,
)
from metagen.store.merge import Source, merge_sources
from metagen.store.writer import refresh_array_views, store_lock, write_part, write_partition


@dataclass
class DropReport:
    """What ``drop`` did (or would do, on a dry run): runs moved per (version, dataset)."""

    moved: dict[tuple[str, str], int] = field(default_factory=dict)
    kept: int = 0

    @property
    def total(self) -> int:
        """Runs moved in all partitions."""
        return sum(self.moved.values())


def drop_runs(root: str | Path, backup: str | Path, source_prefixes: list[str], dry_run: bool = False) -> DropReport:
    """Move the runs whose ``pretrained_source`` starts with one of ``source_prefixes`` into ``backup``.

    Raises:
        StoreError: no prefix, ``backup`` is the store itself, the store has loose run files (compact
            first), or it cannot be written (all checked before anything is written).
    """
    meta = read_metadata(root)
    if not source_prefixes or not all(source_prefixes):
        raise StoreError("give at least one non-empty --pretrained-source prefix (e.g. card:edgenext_xx_small.)")
    if Path(backup).resolve() == Path(root).resolve():
        raise StoreError(f"the backup store must differ from {root}")
    loose = loose_files(root)
    if loose:
        raise StoreError(f"{root} has {len(loose)} loose run files; run `python -m metagen.store compact {root}` first")
    check_store_writable(root)
    report = DropReport()
    with store_lock(root):
        by_dir: dict[Path, list[tuple[Path, Path]]] = {}
        for r, c in compacted_parts(root):
            by_dir.setdefault(r.parent, []).append((r, c))
        for directory, parts in sorted(by_dir.items()):
            version, dataset = parse_partition(directory)
            merged = merge_sources([Source(str(r), *read_part(r, c)) for r, c in parts])
            if merged.conflicts:
                raise StoreError(f"{directory} holds conflicting copies of runs; run `validate` and repair first")
            source = pl.col("pretrained_source").fill_null("")
            hit = pl.any_horizontal([source.str.starts_with(p) for p in source_prefixes])
            gone = merged.runs.filter(hit)
            report.kept += merged.runs.height - gone.height
            if gone.height == 0:
                continue
            report.moved[(version, dataset)] = gone.height
            if dry_run:
                continue
            ids = gone["run_id"].to_list()
            if not Path(backup, "store.json").is_file():
                create_store(backup, meta)
            write_partition(backup, gone, merged.curves.filter(pl.col("run_id").is_in(ids)))
            keep = merged.runs.filter(~pl.col("run_id").is_in(ids))
            if keep.height:
                write_part(root, version, dataset, keep, merged.curves.filter(~pl.col("run_id").is_in(ids)))
            for r, c in parts:
                r.unlink(missing_ok=True)
                c.unlink(missing_ok=True)
        if report.total and not dry_run:
            refresh_array_views(root)
    return report
