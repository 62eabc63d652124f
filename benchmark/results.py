"""The RESULTS layout: one Parquet file per (version, method, dataset, seed) cell, plus ``run.json``.

::

    RESULTS/run.json                                              # the run's config (see RunRecord)
    RESULTS/version=<v>/method=<m>/dataset=<d>/seed=<s>.parquet   # one row per trained epoch event

This module is the one owner of the layout: the runner writes cells with :func:`cell_path` and
:func:`write_cell`, and metrics, figures and tests read them with :func:`load_results` (or
:func:`cell_files`). Path components are percent-encoded with :func:`metagen.store.layout.encode_component`
(a dataset named ``Plant Village`` lives in ``dataset=Plant%20Village``); the names also sit unescaped in
the columns. A cell file is written atomically (temp file + rename), so an existing file is a finished
cell. Imports neither torch nor timm.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from benchmark.replay import Trajectory
from metagen.store.layout import decode_component, encode_component

RESULT_SCHEMA: dict[str, pl.DataType] = {
    "method": pl.String(),
    "version": pl.String(),
    "dataset": pl.String(),
    "seed": pl.Int64(),
    "step": pl.Int64(),
    "time": pl.Float64(),
    "pipeline": pl.Int64(),
    "epoch": pl.Int64(),
    "value": pl.Float64(),
    "incumbent": pl.Float64(),
    "regret": pl.Float64(),
    "budget_s": pl.Float64(),
}
"""Columns of a cell file (contract D): ``time`` is simulated seconds at the end of the epoch,
``value`` the epoch's accuracy (nan = diverged), ``incumbent`` the best non-diverged accuracy so far
(nan before the first), ``regret`` its normalised regret (1.0 before the first)."""

STATS_SCHEMA: dict[str, pl.DataType] = {
    "version": pl.String(),
    "method": pl.String(),
    "dataset": pl.String(),
    "seed": pl.Int64(),
    "stat": pl.String(),
    "count": pl.Int64(),
}
"""Columns of :attr:`Results.stats`."""

RUN_FILE = "run.json"
CELL_GLOB = "version=*/method=*/dataset=*/seed=*.parquet"
_EVENT_ORDER = ("version", "method", "dataset", "seed", "time")  # stable: equal times keep the file's order


class ResultsError(ValueError):
    """A RESULTS directory that is missing, empty, not in this layout, or of another run (store, budget,
    overhead policy)."""


def cell_path(out: str | Path, version: str, method: str, dataset: str, seed: int) -> Path:
    """Where a cell's file lives."""
    return (
        Path(out)
        / f"version={encode_component(version)}"
        / f"method={encode_component(method)}"
        / f"dataset={encode_component(dataset)}"
        / f"seed={int(seed)}.parquet"
    )


def parse_cell_path(path: str | Path) -> tuple[str, str, str, int]:
    """(version, method, dataset, seed) of a cell file path, the names decoded (the inverse of :func:`cell_path`)."""
    p = Path(path)
    d, m, v = p.parent.name, p.parent.parent.name, p.parent.parent.parent.name
    if not (v.startswith("version=") and m.startswith("method=") and d.startswith("dataset=")):
        raise ResultsError(f"{path} is not a cell file ({CELL_GLOB})")
    try:
        seed = int(p.stem.removeprefix("seed="))
    except ValueError as e:
        raise ResultsError(f"{path}: seed '{p.stem.removeprefix('seed=')}' in the file name is not an integer") from e
    return decode_component(v[8:]), decode_component(m[7:]), decode_component(d[8:]), seed


def trajectory_frame(trajectory: Trajectory, method: str, seed: int) -> pl.DataFrame:
    """A trajectory as the rows of its cell file."""
    k = trajectory.time.size
    return pl.DataFrame(
        {
            "method": [method] * k,
            "version": [trajectory.version] * k,
            "dataset": [trajectory.dataset] * k,
            "seed": [int(seed)] * k,
            "step": trajectory.step,
            "time": trajectory.time,
            "pipeline": trajectory.pipeline,
            "epoch": trajectory.epoch,
            "value": trajectory.value,
            "incumbent": trajectory.incumbent,
            "regret": trajectory.regret,
            "budget_s": [trajectory.budget_s] * k,
        },
        schema=RESULT_SCHEMA,
    )


STATS_KEY = "optimizer_stats"
"""Key of a cell file's Parquet metadata holding the optimizer's counters as JSON (e.g. BOHB's model proposals)."""


def write_cell(path: str | Path, frame: pl.DataFrame, stats: Mapping[str, int] | None = None) -> None:
    """Writes a cell file atomically (never a half-written file under the final name); ``stats`` (the optimizer's
    counters, e.g. ``{"model_proposals": 3, "proposals": 40}``) go into its Parquet metadata."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    metadata = {STATS_KEY: json.dumps({k: int(v) for k, v in stats.items()}, sort_keys=True)} if stats else None
    frame.write_parquet(tmp, metadata=metadata)
    os.replace(tmp, final)


def read_cell_stats(path: str | Path) -> dict[str, int]:
    """The optimizer counters stored with a cell file (``{}`` if none; files of peers or older runs have none)."""
    raw = pl.read_parquet_metadata(path).get(STATS_KEY)
    if raw is None:
        return {}
    try:
        return {str(k): int(v) for k, v in json.loads(raw).items()}
    except (ValueError, AttributeError, TypeError) as e:
        raise ResultsError(f"{path}: its {STATS_KEY} metadata is not a JSON object of counts ({e})") from e


def cell_files(out: str | Path) -> list[Path]:
    """Every finished cell file under ``out``, sorted."""
    return sorted(Path(out).glob(CELL_GLOB))


def store_hash(store: str | Path) -> str:
    """SHA-256 over the store's data files (relative path + bytes, sorted by path): changes with its content."""
    root = Path(store)
    h = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    for p in files:
        h.update(str(p.relative_to(root)).encode())
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


MUST_MATCH = ("store_hash", "version", "budget_s", "overhead", "workers")
"""run.json fields a resumed run must share with the first one (else its cells would not compare)."""


def merge_run_record(
    out: str | Path, record: dict[str, Any], defaults: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Writes ``run.json`` for this run, merged with an earlier run's (methods, seeds and datasets
    are united); :class:`ResultsError` if the earlier run differs in a :data:`MUST_MATCH` field or in a
    method's options. ``defaults`` (per method) fills options an earlier record does not list, so a record
    written when fewer defaults were recorded still matches a run with the same effective options."""
    path = Path(out) / RUN_FILE
    merged = dict(record)
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError as e:
            raise ResultsError(f"{path} is not valid JSON ({e}); delete it or choose another out=") from e
        for key in MUST_MATCH:
            if key in old and old[key] != record.get(key):
                raise ResultsError(
                    f"{Path(out)} holds results of another run: {key} was {old[key]!r}, now {record.get(key)!r}; "
                    "use another out= directory, or delete the old results"
                )
        old_options, new_options = old.get("method_options", {}), record.get("method_options", {})
        for m in sorted(set(old_options) & set(new_options)):
            filled = _as_json({**(defaults or {}).get(m, {}), **old_options[m]})
            if filled != _as_json(new_options[m]):
                raise ResultsError(
                    f"{Path(out)} holds results of method '{m}' with options {old_options[m]}, now {new_options[m]}; "
                    "use another out= directory, or delete the old results"
                )
        old_variants, new_variants = old.get("variants", {}), record.get("variants", {})
        for m in sorted(set(old_variants) & set(new_variants)):
            if old_variants[m].get("method") != new_variants[m].get("method"):
                raise ResultsError(
                    f"{Path(out)} holds results of variant '{m}' of method '{old_variants[m].get('method')}', now of "
                    f"'{new_variants[m].get('method')}'; give the variant another name, or use another out= directory"
                )
        _check_environment(out, old, record, merged)
        for key in ("methods", "seeds", "datasets"):
            merged[key] = sorted(set(old.get(key) or []) | set(record.get(key) or []))
        merged["variants"] = {**old_variants, **new_variants}
        merged["method_options"] = {**old.get("method_options", {}), **record.get("method_options", {})}
        merged["created_at"] = old.get("created_at", record.get("created_at"))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{RUN_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(merged, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
    return merged


def _check_environment(out: str | Path, old: dict[str, Any], record: dict[str, Any], merged: dict[str, Any]) -> None:
    """Warns when ``out``'s earlier cells were replayed in another numerical environment
    (``benchmark.environment``) and keeps the earlier ones in ``merged["earlier_environments"]``."""
    earlier = list(old.get("earlier_environments", []))
    before, now = old.get("environment"), record.get("environment")
    if before and now and before != now:
        changed = [f"{k} {before.get(k)} -> {now.get(k)}" for k in sorted(set(before) | set(now))
                   if before.get(k) != now.get(k)]  # fmt: skip
        warnings.warn(
            f"{Path(out)}: its earlier cells were replayed in another numerical environment ({'; '.join(changed)}): "
            "GP methods' results can differ between the two by rounding (docs/benchmark-protocol.md §2)",
            stacklevel=3,
        )
        earlier.append(before)
    elif now and not before and not earlier:  # written before run.json recorded environments: unknown
        earlier.append({"unknown": "this folder's earlier run.json did not record its environment"})
    if earlier:
        merged["earlier_environments"] = earlier


def _as_json(value: Any) -> Any:
    """``value`` as ``run.json`` stores it (tuples as lists, other objects as strings)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def read_run_record(out: str | Path) -> dict[str, Any]:
    """The ``run.json`` of a RESULTS directory."""
    path = Path(out) / RUN_FILE
    if not path.is_file():
        raise ResultsError(f"{out} has no {RUN_FILE}; is it a RESULTS directory of `python -m benchmark.run`?")
    return json.loads(path.read_text())


# ---- reading ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Results:
    """A RESULTS directory read into memory.

    Attributes:
        root: the directory.
        events: every event row (columns of :data:`RESULT_SCHEMA`), sorted by version, method, dataset, seed and
            time (events of equal time in file order; ``step`` is the ask's index, shared by its epochs).
        runs: one row per result file (``version, method, dataset, seed``), including files without events.
        stats: the optimizers' counters stored with the files (:func:`read_cell_stats`), one row per
            (``version, method, dataset, seed, stat``) with its ``count``; empty when no optimizer kept any.
    """

    root: Path
    events: pl.DataFrame
    runs: pl.DataFrame
    stats: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=STATS_SCHEMA))

    @property
    def versions(self) -> list[str]:
        """Versions present, sorted."""
        return sorted(self.runs["version"].unique().to_list())

    def methods(self, version: str | None = None) -> list[str]:
        """Methods present (in one version), sorted."""
        runs = self.runs if version is None else self.runs.filter(pl.col("version") == version)
        return sorted(runs["method"].unique().to_list())

    def budget_s(self, version: str) -> float:
        """The largest time budget of a version's runs."""
        b = self.events.filter(pl.col("version") == version)["budget_s"].max()
        if b is None:
            raise ResultsError(f"{self.root}: version '{version}' has no events, so no time budget")
        return float(b)  # type: ignore[arg-type]


def load_results(root: str | Path) -> Results:
    """Reads a RESULTS directory.

    Raises:
        ResultsError: the directory is missing, holds no result file, or a file lacks contract columns or
            disagrees with its path.
    """
    root = Path(root)
    if not root.is_dir():
        raise ResultsError(f"RESULTS directory {root} does not exist; run `python -m benchmark.run` to make one")
    files = cell_files(root)
    if not files:
        raise ResultsError(
            f"RESULTS directory {root} holds no result files (expected {root}/{CELL_GLOB}); "
            "is it the output directory of `python -m benchmark.run`?"
        )
    keys = [parse_cell_path(f) for f in files]
    runs = pl.DataFrame(keys, schema=["version", "method", "dataset", "seed"], orient="row")
    frames = []
    stat_rows = []
    for f, key in zip(files, keys, strict=True):
        try:
            frame = pl.read_parquet(f)
        except Exception as e:  # polars raises several types for damaged files
            raise ResultsError(f"{f}: not readable as Parquet ({e}); delete it and re-run that (method, seed)") from e
        missing = [c for c in RESULT_SCHEMA if c not in frame.columns]
        if missing:
            raise ResultsError(f"{f}: missing columns {missing}; it was not written by benchmark.run (contract D)")
        frames.append(frame.select(pl.col(c).cast(t) for c, t in RESULT_SCHEMA.items()))
        stat_rows += [(*key, stat, count) for stat, count in read_cell_stats(f).items()]
    events = pl.concat(frames, how="vertical")
    bad = events.join(runs, on=["version", "method", "dataset", "seed"], how="anti")
    if bad.height:
        raise ResultsError(f"{root}: {bad.height} rows disagree with their file's version/method/dataset/seed")
    events = events.sort(*_EVENT_ORDER, maintain_order=True)
    stats = pl.DataFrame(stat_rows, schema=STATS_SCHEMA, orient="row")
    return Results(root=root, events=events, runs=runs.sort("version", "method", "dataset", "seed"), stats=stats)


def merge_results(parts: Sequence[Results]) -> Results:
    """Several RESULTS directories as one (e.g. ours and a peer's), for comparing their methods.

    Raises:
        ResultsError: two directories hold the same (version, method, dataset, seed).
    """
    if not parts:
        raise ResultsError("merge_results needs at least one RESULTS directory")
    runs = pl.concat([p.runs for p in parts], how="vertical")
    dup = runs.filter(runs.is_duplicated())
    if dup.height:
        roots = ", ".join(str(p.root) for p in parts)
        raise ResultsError(f"{dup.height} runs appear in more than one of {roots}, e.g. {dup.row(0, named=True)}")
    events = pl.concat([p.events for p in parts], how="vertical").sort(*_EVENT_ORDER, maintain_order=True)
    stats = pl.concat([p.stats for p in parts], how="vertical")
    return Results(
        root=parts[0].root, events=events, runs=runs.sort("version", "method", "dataset", "seed"), stats=stats
    )
