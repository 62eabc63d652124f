"""Whole-store checks and summaries: ``validate`` (every problem, not the first) and ``info``."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import polars as pl

from metagen.store.errors import StoreError, ValidationError
from metagen.store.files import read_part, read_run_file
from metagen.store.layout import (
    compacted_parts,
    loose_files,
    orphan_curve_parts,
    parse_partition,
    read_metadata,
    temp_files,
)
from metagen.store.merge import Source, merge_sources
from metagen.store.reader import StoreReader
from metagen.store.records import kind_problems
from metagen.store.schema import SCHEMA_VERSION, Problem


def validate_store(root: str | Path) -> list[Problem]:
    """Every problem of the store at ``root``: unreadable files, schema violations, conflicts, leftovers."""
    root = Path(root)
    try:
        meta = read_metadata(root)
    except StoreError as e:
        return [Problem(str(root), str(e), "see the message")]
    problems: list[Problem] = []
    now = time.time()
    for tmp in temp_files(root):
        age = now - tmp.stat().st_mtime if tmp.exists() else 0.0
        problems.append(
            Problem(
                str(tmp),
                f"temp file left by a writer ({age:.0f} s old); readers ignore it",
                "run `python -m metagen.store compact STORE` to remove leftovers of killed writers",
                severity="warning",
            )
        )
    for orphan in orphan_curve_parts(root):
        problems.append(
            Problem(str(orphan), "curves part without its runs part (a killed compact); ignored", "run `compact`",
                    severity="warning")
        )  # fmt: skip
    sources: dict[tuple[str, str], list[Source]] = defaultdict(list)
    for runs_path, curves_path in compacted_parts(root):
        _collect(sources, parse_partition(runs_path.parent), str(runs_path), problems,
                 lambda r=runs_path, c=curves_path: read_part(r, c, check=True))  # fmt: skip
    for path in loose_files(root):
        _collect(sources, parse_partition(path.parent), str(path), problems,
                 lambda p=path: read_run_file(p, check=True))  # fmt: skip
    for (version, dataset), srcs in sorted(sources.items()):
        for s in srcs:
            problems += _check_location(s, version, dataset) + kind_problems(s.runs, meta.synthetic, s.label)
        problems += merge_sources(srcs).conflicts
    return problems


def _collect(sources: dict[tuple[str, str], list[Source]], key: tuple[str, str], label: str,
             problems: list[Problem], read: Any) -> None:  # fmt: skip
    try:
        runs, curves = read()
    except ValidationError as e:
        problems.extend(e.problems)
        return
    except StoreError as e:
        problems.append(Problem(label, str(e), "see the message"))
        return
    sources[key].append(Source(label, runs, curves))


def _check_location(s: Source, version: str, dataset: str) -> list[Problem]:
    wrong = s.runs.filter((pl.col("dataset_version") != version) | (pl.col("dataset") != dataset))
    return [
        Problem(s.label, f"run of {v}/{d} stored under {version}/{dataset}", "move the file to its partition", r)
        for r, v, d in wrong.select("run_id", "dataset_version", "dataset").iter_rows()
    ]


def store_info(root: str | Path) -> dict[str, Any]:
    """Summary of a store: sizes (total and per version), statuses, files, compute, metadata."""
    reader = StoreReader(root, check=False)
    meta = reader.metadata
    runs = reader.scan_runs().select("run_id", "dataset_version", "dataset", "n_epochs", "status").collect()
    cost = (
        reader.scan_curves()
        .select("run_id", (pl.col("train_time").cast(pl.Float64) + pl.col("eval_time")).alias("s"))
        .join(runs.lazy().select("run_id", "dataset_version"), on="run_id")
        .group_by("dataset_version")
        .agg(pl.col("s").sum() / 3600.0)
        .collect()
    )
    hours = dict(cost.iter_rows())
    versions = {}
    for v in sorted(runs["dataset_version"].unique().to_list()):
        vr = runs.filter(pl.col("dataset_version") == v)
        versions[v] = {
            "n_datasets": vr["dataset"].n_unique(),
            "n_runs": vr.height,
            "n_epochs": int(vr["n_epochs"].sum()),
            "compute_hours": round(float(hours.get(v, 0.0)), 3),
            "status": dict(sorted(vr.group_by("status").len().iter_rows())),
        }
    root = Path(root)
    return {
        "name": meta.name,
        "schema_version": SCHEMA_VERSION,
        "synthetic": meta.synthetic,
        "n_datasets": runs.select("dataset_version", "dataset").n_unique() if runs.height else 0,
        "n_runs": runs.height,
        "n_epochs": int(runs["n_epochs"].sum() or 0),
        "compute_hours": round(sum(hours.values()), 3),
        "status": dict(sorted(runs.group_by("status").len().iter_rows())) if runs.height else {},
        "versions": versions,
        "files": {
            "loose": len(loose_files(root)),
            "compacted_parts": len(compacted_parts(root)),
            "temp": len(temp_files(root)),
            "bytes": sum(p.stat().st_size for p in root.rglob("*") if p.is_file()),
        },
        "description": meta.description,
        "created_at": meta.created_at,
    }
