"""The RESULTS layout: one Parquet file per (version, method, dataset, seed) cell, plus ``run.json``.

::

    RESULTS/run.json                                              # the run's config (see RunRecord)
    RESULTS/version=<v>/method=<m>/dataset=<d>/seed=<s>.parquet   # one row per trained epoch event

Path components are escaped with :func:`metagen.store.layout.encode_component`; the names also sit
unescaped in the columns. A cell file is written atomically (temp file + rename), so an existing
file is a finished cell. Imports neither torch nor timm.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
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

RUN_FILE = "run.json"


class ResultsError(ValueError):
    """A RESULTS directory that does not fit the run (another store, budget or overhead policy)."""


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
    """(version, method, dataset, seed) of a cell file path."""
    p = Path(path)
    d, m, v = p.parent.name, p.parent.parent.name, p.parent.parent.parent.name
    if not (v.startswith("version=") and m.startswith("method=") and d.startswith("dataset=")):
        raise ResultsError(f"{path} is not a cell file (version=<v>/method=<m>/dataset=<d>/seed=<s>.parquet)")
    seed = int(p.stem.removeprefix("seed="))
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


def write_cell(path: str | Path, frame: pl.DataFrame) -> None:
    """Writes a cell file atomically (never a half-written file under the final name)."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, final)


def cell_files(out: str | Path) -> list[Path]:
    """Every finished cell file under ``out``, sorted."""
    return sorted(Path(out).glob("version=*/method=*/dataset=*/seed=*.parquet"))


def read_results(out: str | Path, methods: Iterable[str] | None = None) -> pl.DataFrame:
    """All rows of a RESULTS directory (optionally of some methods), in the schema's column order."""
    files = cell_files(out)
    if methods is not None:
        wanted = set(methods)
        files = [f for f in files if parse_cell_path(f)[1] in wanted]
    if not files:
        return pl.DataFrame(schema=RESULT_SCHEMA)
    return pl.concat([pl.read_parquet(f) for f in files], how="vertical").select(list(RESULT_SCHEMA))


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


def merge_run_record(out: str | Path, record: dict[str, Any]) -> dict[str, Any]:
    """Writes ``run.json`` for this run, merged with an earlier run's (methods, seeds and datasets
    are united); :class:`ResultsError` if the earlier run differs in a :data:`MUST_MATCH` field."""
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
            if old_options[m] != new_options[m]:
                raise ResultsError(
                    f"{Path(out)} holds results of method '{m}' with options {old_options[m]}, now {new_options[m]}; "
                    "use another out= directory, or delete the old results"
                )
        for key in ("methods", "seeds", "datasets"):
            merged[key] = sorted(set(old.get(key) or []) | set(record.get(key) or []))
        merged["method_options"] = {**old.get("method_options", {}), **record.get("method_options", {})}
        merged["created_at"] = old.get("created_at", record.get("created_at"))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{RUN_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(merged, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
    return merged


def read_run_record(out: str | Path) -> dict[str, Any]:
    """The ``run.json`` of a RESULTS directory."""
    path = Path(out) / RUN_FILE
    if not path.is_file():
        raise ResultsError(f"{out} has no {RUN_FILE}; is it a RESULTS directory of `python -m benchmark.run`?")
    return json.loads(path.read_text())
