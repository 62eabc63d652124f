"""Merging runs from several files of one partition: identical copies collapse, conflicts are reported."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from metagen.store.records import empty_frames, same_content
from metagen.store.schema import Problem


@dataclass(frozen=True)
class Source:
    """The runs and curves of one file (a loose run file or a compacted part)."""

    label: str
    runs: pl.DataFrame
    curves: pl.DataFrame


@dataclass(frozen=True)
class Merged:
    """The union of several sources with one copy per run, and the runs whose copies disagree."""

    runs: pl.DataFrame
    curves: pl.DataFrame
    conflicts: list[Problem]
    rejected: frozenset[str]  # labels of sources that lost a conflict (kept on disk, not merged)


def merge_sources(sources: Sequence[Source]) -> Merged:
    """Union of ``sources``, earlier sources winning; identical duplicates collapse silently.

    A run stored twice with different content keeps the earliest copy and reports a conflict
    naming both files; the later file is listed in ``rejected`` so that nothing deletes it.
    """
    if not sources:
        runs, curves = empty_frames()
        return Merged(runs, curves, [], frozenset())
    if len(sources) == 1:
        s = sources[0]
        return Merged(s.runs, s.curves, [], frozenset())
    tagged = [s.runs.select("run_id").with_columns(pl.lit(i, pl.Int32).alias("_src")) for i, s in enumerate(sources)]
    ids = pl.concat(tagged)
    dup_ids = ids.filter(pl.col("run_id").is_duplicated())
    conflicts: list[Problem] = []
    rejected: set[str] = set()
    drop: set[tuple[str, int]] = set()
    if dup_ids.height:
        for run_id, srcs in dup_ids.group_by("run_id").agg(pl.col("_src").sort()).sort("run_id").iter_rows():
            first = srcs[0]
            a = _one(sources[first], run_id)
            for other in srcs[1:]:
                drop.add((run_id, other))
                if not same_content(*a, *_one(sources[other], run_id)):
                    conflicts.append(
                        Problem(
                            sources[other].label,
                            f"run stored twice with different content (also in {sources[first].label})",
                            "keep the right copy: delete or move aside the wrong file, then run `compact`",
                            run_id=run_id,
                        )
                    )
                    rejected.add(sources[other].label)
    runs_parts, curve_parts = [], []
    for i, s in enumerate(sources):
        gone = [r for (r, src) in drop if src == i]
        if gone:
            runs_parts.append(s.runs.filter(~pl.col("run_id").is_in(gone)))
            curve_parts.append(s.curves.filter(~pl.col("run_id").is_in(gone)))
        else:
            runs_parts.append(s.runs)
            curve_parts.append(s.curves)
    return Merged(pl.concat(runs_parts), pl.concat(curve_parts), conflicts, frozenset(rejected))


def _one(s: Source, run_id: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    return s.runs.filter(pl.col("run_id") == run_id), s.curves.filter(pl.col("run_id") == run_id)
