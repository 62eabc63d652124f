"""Reading a store with polars: lazy tables, candidate pipelines, dense curve arrays, bounds.

Compacted parts and loose run files are read together; a run present in both (a compaction that
was killed half-way) is returned once. Imports neither torch nor timm.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from metagen.store.array_view import VIEW_METRIC, parts_token, read_view, view_token, write_view
from metagen.store.encoding import encode_hyperparameters
from metagen.store.errors import CorruptFileError, SchemaVersionError, StoreError, ValidationError
from metagen.store.files import corrupt_fix, read_part, read_run_file
from metagen.store.layout import StoreMetadata, compacted_parts, loose_files, parse_partition, read_metadata
from metagen.store.merge import Source, merge_sources
from metagen.store.records import empty_frames
from metagen.store.schema import (
    CURVES_SCHEMA,
    METADATA_KEY,
    RUNS_SCHEMA,
    SCHEMA_VERSION,
    check_arrow_schema,
)

PartitionKey = tuple[str, str]  # (version, dataset)


@dataclass(frozen=True)
class CurveArrays:
    """All curves of one dataset as dense arrays, one row per run, NaN after a run's last epoch.

    Attributes:
        version, dataset: which task.
        run_ids, pipeline_ids, models, status: per run, shape ``(n_runs,)``, rows sorted by run id.
        n_epochs: epochs trained per run, ``(n_runs,)`` int.
        values: the metric (``eval_top1`` by default, a fraction), ``(n_runs, max_epochs)``.
        cost: seconds per epoch (``train_time + eval_time``), ``(n_runs, max_epochs)``.
    """

    version: str
    dataset: str
    run_ids: np.ndarray
    pipeline_ids: np.ndarray
    models: np.ndarray
    status: np.ndarray
    n_epochs: np.ndarray
    values: np.ndarray
    cost: np.ndarray


class StoreReader:
    """Read-only view of a store.

    Args:
        root: the store directory.
        check: validate every loose run file's content when reading it (compacted parts were
            validated when written; their schema version is always checked).
    """

    def __init__(self, root: str | Path, check: bool = True):
        self.root = Path(root)
        self.metadata: StoreMetadata = read_metadata(self.root)
        self.check = check

    # ---- files -------------------------------------------------------------------------------

    @cached_property
    def _files(self) -> dict[PartitionKey, list[tuple[str, Path, Path | None]]]:
        """Per partition: ("part", runs file, curves file) and ("loose", run file, None) entries."""
        return _list_files(self.root, None)

    def _version_files(self, version: str) -> dict[PartitionKey, list[tuple[str, Path, Path | None]]]:
        """:attr:`_files` of one version, listing only that version's directories when nothing is cached."""
        if "_files" in self.__dict__:
            return {k: v for k, v in self._files.items() if k[0] == version}
        cache = self.__dict__.setdefault("_by_version", {})
        if version not in cache:
            cache[version] = _list_files(self.root, version)
        return cache[version]

    def refresh(self) -> None:
        """Forget the cached file listing (to see runs written since)."""
        self.__dict__.pop("_files", None)
        self.__dict__.pop("_by_version", None)

    def partitions(self, version: str | None = None) -> list[PartitionKey]:
        """(version, dataset) pairs that hold runs."""
        if version is not None:
            return list(self._version_files(version))
        return list(self._files)

    def versions(self) -> list[str]:
        """Dataset versions in the store."""
        return sorted({v for v, _ in self._files})

    def read_partition(self, version: str, dataset: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(runs, curves) of one dataset, one copy per run, runs sorted by run id."""
        files = self._files.get((version, dataset))
        if not files:
            raise StoreError(
                f"no runs of dataset '{dataset}' (version '{version}') in {self.root}; available: {self.partitions()}"
            )
        sources = []
        for kind, a, b in files:
            if kind == "part":
                assert b is not None
                sources.append(Source(str(a), *read_part(a, b)))
            else:
                sources.append(Source(str(a), *read_run_file(a, check=self.check)))
        merged = merge_sources(sources)
        if merged.conflicts:
            raise ValidationError(merged.conflicts)
        runs, curves = merged.runs, merged.curves
        if len(sources) > 1:
            runs, curves = runs.sort("run_id"), curves.sort("run_id", "epoch")
        return runs, curves

    # ---- lazy tables ---------------------------------------------------------------------------

    def scan_runs(self, version: str | None = None) -> pl.LazyFrame:
        """The runs table (lazy), optionally of one version."""
        return self._scan(version, "runs")

    def scan_curves(self, version: str | None = None) -> pl.LazyFrame:
        """The curves table (lazy), optionally of one version."""
        return self._scan(version, "curves")

    def _scan(self, version: str | None, table: str) -> pl.LazyFrame:
        frames: list[pl.LazyFrame] = []
        part_files: list[Path] = []
        duplicates_possible = False
        for key in self.partitions(version):
            files = self._files[key]
            duplicates_possible |= len(files) > 1
            for kind, a, b in files:
                if kind == "part":
                    path = a if table == "runs" else b
                    assert path is not None
                    self._check_footer(path)
                    part_files.append(path)
                else:
                    runs, curves = read_run_file(a, check=self.check)
                    frames.append((runs if table == "runs" else curves).lazy())
        if part_files:
            frames.insert(0, pl.scan_parquet(part_files))
        if not frames:
            runs, curves = empty_frames()
            return (runs if table == "runs" else curves).lazy()
        lf = pl.concat(frames, how="vertical")
        if duplicates_possible:
            subset = ["run_id"] if table == "runs" else ["run_id", "epoch"]
            lf = lf.unique(subset=subset, keep="first", maintain_order=True)
        return lf

    def _check_footer(self, path: Path) -> None:
        """Check a compacted file's footer: readable Parquet of this schema version."""
        try:
            version = pl.read_parquet_metadata(path).get(METADATA_KEY.decode())
        except Exception as e:  # polars raises several types for damaged files
            raise CorruptFileError(f"{path}: not readable as Parquet ({e}); {corrupt_fix(path)}") from e
        if version != str(SCHEMA_VERSION):
            expected = RUNS_SCHEMA if path.name.endswith("-runs.parquet") else CURVES_SCHEMA
            raise SchemaVersionError(str(check_arrow_schema(pq.read_schema(path), expected, str(path))[0]))

    # ---- queries ------------------------------------------------------------------------------

    def datasets(self, version: str | None = None) -> pl.DataFrame:
        """One row per (version, dataset): number of runs, of epochs and of distinct pipelines."""
        return (
            self.scan_runs(version)
            .group_by("dataset_version", "dataset")
            .agg(
                pl.len().alias("n_runs"),
                pl.col("n_epochs").sum().alias("n_epochs"),
                pl.col("pipeline_id").n_unique().alias("n_pipelines"),
            )
            .sort("dataset_version", "dataset")
            .collect()
        )

    def pipelines(self, dataset: str, version: str) -> pl.DataFrame:
        """The candidate pipelines of a dataset: one row per pipeline id (model + hyperparameters)."""
        runs, _ = self.read_partition(version, dataset)
        return runs.sort("pipeline_id", "seed", "run_id").unique("pipeline_id", keep="first", maintain_order=True)

    def curve_arrays(self, dataset: str, version: str, metric: str = "eval_top1") -> CurveArrays:
        """Dense ``(n_runs, max_epochs)`` arrays of one dataset's metric and per-epoch cost."""
        _check_metric(metric)
        if self._single_part(version, dataset):
            return self._read_aligned([(version, dataset)], metric)[dataset]
        runs, curves = self.read_partition(version, dataset)
        return to_arrays(version, dataset, runs, curves, metric)

    def version_arrays(self, version: str, metric: str = "eval_top1") -> dict[str, CurveArrays]:
        """:meth:`curve_arrays` for every dataset of a version (arrays as wide as the version's budget)."""
        _check_metric(metric)
        keys = self.partitions(version)
        fast = [k for k in keys if self._single_part(*k)]
        if metric == VIEW_METRIC and keys and len(fast) == len(keys):
            columns = read_view(self.root, version, self._view_token(keys))
            if columns is not None:
                return _split_view(version, columns)
        out = self._read_aligned(fast, metric) if fast else {}
        for v, d in keys:
            if (v, d) not in fast:
                out[d] = self.curve_arrays(d, v, metric)
        return dict(sorted(out.items()))

    def write_array_view(self, version: str) -> bool:
        """Rebuild the dense-array view of ``version`` (see :mod:`metagen.store.array_view`) unless it is current.

        Only a version whose every dataset is one compacted part gets a view; returns whether it has one.
        """
        keys = self.partitions(version)
        if not keys or not all(self._single_part(*k) for k in keys):
            return False
        token = self._view_token(keys)
        if view_token(self.root, version) == token:
            return True
        parts = [self._version_files(version)[k][0] for k in keys]
        runs_paths = [p[1] for p in parts]
        curves_paths = [p[2] for p in parts if p[2] is not None]  # a compacted part always has its curves file
        for p in runs_paths + curves_paths:
            self._check_footer(p)
        runs, curves = _scan_columns([(runs_paths, _ARRAY_RUN_COLUMNS), (curves_paths, (VIEW_METRIC, *_TIME_COLUMNS))])
        n_epochs = runs["n_epochs"].to_numpy()
        width = max(_max_int(runs["max_epochs"]), _max_int(runs["n_epochs"]))
        mask = np.arange(width) < n_epochs[:, None]  # curves hold each run's epochs in run order
        columns: dict[str, np.ndarray] = {c: runs[c].to_numpy() for c in _ARRAY_RUN_COLUMNS if c != "max_epochs"}
        for name, column in (("values", VIEW_METRIC), *((c, c) for c in _TIME_COLUMNS)):
            dense = np.full((runs.height, width), np.nan, dtype=np.float32)
            dense[mask] = curves[column].fill_null(np.nan).to_numpy()
            columns[name] = dense
        write_view(self.root, version, columns, token)
        return True

    def _view_token(self, keys: list[PartitionKey]) -> str:
        return parts_token([self._version_files(k[0])[k][0][1] for k in keys])

    def _single_part(self, version: str, dataset: str) -> bool:
        files = self._version_files(version).get((version, dataset), [])
        return len(files) == 1 and files[0][0] == "part"

    def _read_aligned(self, keys: list[PartitionKey], metric: str) -> dict[str, CurveArrays]:
        """Arrays of partitions that are one compacted part each: validated and sorted when written,
        so only the needed columns are read, all files in one scan, and rows are placed by position."""
        parts = [self._version_files(k[0])[k][0] for k in keys]
        runs_paths = [p[1] for p in parts]
        curves_paths = [p[2] for p in parts if p[2] is not None]
        for p in runs_paths + curves_paths:
            self._check_footer(p)
        runs, curves = _scan_columns([(runs_paths, _ARRAY_RUN_COLUMNS), (curves_paths, (metric, *_TIME_COLUMNS))])
        big = to_arrays(keys[0][0], "*", runs, curves, metric, aligned=True)
        counts = runs.group_by("dataset", maintain_order=True).len()["len"].to_list()
        out, start = {}, 0
        for (version, dataset), n in zip(keys, counts, strict=True):
            rows = slice(start, start + n)
            start += n
            out[dataset] = CurveArrays(
                version,
                dataset,
                *(getattr(big, f)[rows] for f in CurveArrays.__dataclass_fields__ if f not in ("version", "dataset")),
            )
        return out

    def encoded_hyperparameters(self, version: str | None = None, models: Sequence[str] | None = None) -> pl.DataFrame:
        """The encoded hyperparameter table of the runs (see :mod:`metagen.store.encoding`)."""
        runs = self.scan_runs(version).collect().sort("dataset_version", "dataset", "run_id")
        return encode_hyperparameters(runs, models=models)

    def bounds(self, version: str | None = None) -> pl.DataFrame:
        """Best and worst accuracy per dataset, as normalized regret uses them.

        ``best`` is the highest validation top-1 of any epoch of any run; ``worst`` the lowest
        (NaN epochs of diverged runs are ignored).
        """
        runs = self.scan_runs(version).select("run_id", "dataset_version", "dataset")
        acc = self.scan_curves(version).select("run_id", "eval_top1").filter(pl.col("eval_top1").is_not_nan())
        return (
            acc.join(runs, on="run_id")
            .group_by("dataset_version", "dataset")
            .agg(pl.col("eval_top1").max().alias("best"), pl.col("eval_top1").min().alias("worst"))
            .sort("dataset_version", "dataset")
            .collect()
        )


def _list_files(root: Path, version: str | None) -> dict[PartitionKey, list[tuple[str, Path, Path | None]]]:
    out: dict[PartitionKey, list[tuple[str, Path, Path | None]]] = defaultdict(list)
    for r, c in compacted_parts(root, version):
        out[parse_partition(r.parent)].append(("part", r, c))
    for p in loose_files(root, version):
        out[parse_partition(p.parent)].append(("loose", p, None))
    return dict(sorted(out.items()))


def _split_view(version: str, columns: dict[str, np.ndarray]) -> dict[str, CurveArrays]:
    """Per-dataset arrays from a version's array view (rows grouped by dataset, sorted by run id)."""
    datasets = columns["dataset"]
    values = columns["values"].astype(np.float64)
    cost = columns["train_time"].astype(np.float64) + columns["eval_time"]
    starts = np.flatnonzero(np.r_[True, datasets[1:] != datasets[:-1]]) if len(datasets) else np.zeros(0, int)
    ends = np.r_[starts[1:], len(datasets)]
    out = {}
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        dataset = str(datasets[a])
        out[dataset] = CurveArrays(
            version, dataset, columns["run_id"][a:b], columns["pipeline_id"][a:b], columns["model"][a:b],
            columns["status"][a:b], columns["n_epochs"][a:b], values[a:b], cost[a:b],
        )  # fmt: skip
    return dict(sorted(out.items()))


_TIME_COLUMNS = ("train_time", "eval_time")
_ARRAY_RUN_COLUMNS = ("dataset", "run_id", "pipeline_id", "model", "status", "n_epochs", "max_epochs")


def _check_metric(metric: str) -> None:
    if metric not in CURVES_SCHEMA.names or metric in ("run_id", "epoch"):
        raise StoreError(f"unknown metric '{metric}'; choose one of {CURVES_SCHEMA.names[2:]}")


def _scan_columns(queries: list[tuple[list[Path], tuple[str, ...]]]) -> list[pl.DataFrame]:
    """Columns of several file lists, read concurrently."""
    try:
        return pl.collect_all([pl.scan_parquet(paths, glob=False).select(cols) for paths, cols in queries])
    except Exception as e:  # polars raises several types for damaged files
        where = queries[0][0][0].parent.parent
        raise CorruptFileError(f"{where}: damaged Parquet data ({e}); run `validate` to find the file") from e


def _max_int(column: pl.Series) -> int:
    """The largest value of an integer column (0 when it is empty or all null)."""
    value = column.max()
    return int(value) if isinstance(value, int) else 0


def to_arrays(
    version: str, dataset: str, runs: pl.DataFrame, curves: pl.DataFrame, metric: str, aligned: bool = False
) -> CurveArrays:
    """Dense arrays from a dataset's runs (sorted by run id) and curves.

    With ``aligned``, ``curves`` holds exactly the runs' epochs in run order (as a compacted part
    does) and needs no ``run_id`` column.
    """
    _check_metric(metric)
    n = runs.height
    width = max(_max_int(runs["max_epochs"]), _max_int(runs["n_epochs"]))
    values = np.full((n, width), np.nan)
    cost = np.full((n, width), np.nan)
    if aligned:  # curves hold run 0's epochs 1..n_0, then run 1's, ...: row-major order of a prefix mask
        where: tuple[np.ndarray, ...] | np.ndarray = np.arange(width) < runs["n_epochs"].to_numpy()[:, None]
        c = curves
    else:
        index = runs.select("run_id").with_row_index("_i")
        c = curves.select("run_id", "epoch", metric, "train_time", "eval_time").join(index, on="run_id", how="inner")
        where = (c["_i"].to_numpy(), c["epoch"].to_numpy() - 1)
    values[where] = c[metric].fill_null(np.nan).to_numpy()
    cost[where] = c["train_time"].to_numpy().astype(np.float64) + c["eval_time"].to_numpy()
    return CurveArrays(
        version=version,
        dataset=dataset,
        run_ids=runs["run_id"].to_numpy(),
        pipeline_ids=runs["pipeline_id"].to_numpy(),
        models=runs["model"].to_numpy(),
        status=runs["status"].to_numpy(),
        n_epochs=runs["n_epochs"].to_numpy(),
        values=values,
        cost=cost,
    )
