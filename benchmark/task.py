"""A benchmark task: one dataset of a store, its hidden learning curves, and what optimizers may see.

A task's candidates are the dataset's pipelines with at least one recorded epoch, one run per
pipeline id (the first by run id when a pipeline was run with several seeds). Curves are replayed
as recorded, with two normalisations:

* a curve ends at its first diverged (NaN) epoch: that epoch is the pipeline's last;
* a curve shorter than the task's ``max_epochs`` (timeout, out of memory, error, diverged) counts as
  finished at its last epoch: asking for more returns nothing more.

Imports neither torch nor timm.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from benchmark.protocol import MetaContext, SearchView
from benchmark.regret import normalized_regret
from metagen.store import StoreReader
from metagen.versions import budgets_s

META_FEATURES = ("train_size", "num_classes", "resolution", "channels")


class TaskError(ValueError):
    """A task cannot be built: missing store, version or dataset, or no usable curve."""


def default_budget(version: str) -> float:
    """The version's HPO budget (:data:`metagen.versions.VERSIONS`); a clear error for versions without one."""
    budgets = budgets_s()
    if version not in budgets:
        raise TaskError(f"version '{version}' has no default budget (known: {budgets}); pass budget_s explicitly")
    return budgets[version]


@dataclass(frozen=True)
class Query:
    """What training ``pipeline`` from epoch ``start`` to ``end`` gives (see :meth:`Task.query`).

    Attributes:
        value: accuracy at ``end`` (``nan`` when diverged).
        cost: seconds charged: the recorded train + eval time of epochs ``start+1 .. end`` (0 for a lookup).
        start: highest epoch trained before the query.
        end: epoch reached: the one asked for, capped at the curve's last epoch.
        last: whether ``end`` is the curve's last epoch.
    """

    value: float
    cost: float
    start: int
    end: int
    last: bool


@dataclass(frozen=True, eq=False)
class Task:
    """One dataset of one version: candidate set plus hidden curves. Arrays are read-only.

    Attributes:
        view: what an optimizer may see (:class:`~benchmark.protocol.SearchView`).
        values: ``(n, E)`` validation accuracy per candidate and epoch; ``nan`` after a curve's end
            and at a diverged epoch.
        cost: ``(n, E)`` seconds per epoch (recorded ``train_time + eval_time``); ``nan`` after the end.
        n_epochs: ``(n,)`` last epoch of each curve (1-based; a diverged curve ends at its first nan).
        status: ``(n,)`` run status in the store (``ok``, ``diverged``, ``timeout``, ...).
        run_ids: ``(n,)`` store run id behind each candidate.
        best: highest accuracy of any epoch of any run of the dataset (normalised-regret anchor).
        worst: lowest accuracy of any epoch of any run of the dataset (normalised-regret anchor).
        store: the store's path.
    """

    view: SearchView
    values: np.ndarray
    cost: np.ndarray
    n_epochs: np.ndarray
    status: np.ndarray
    run_ids: np.ndarray
    best: float
    worst: float
    store: str = ""

    @property
    def dataset(self) -> str:
        """The dataset's name."""
        return self.view.name

    @property
    def version(self) -> str:
        """The meta-dataset version."""
        return self.view.version

    @property
    def n(self) -> int:
        """Number of candidates."""
        return self.view.n

    def query(self, pipeline: int, epoch: int, highest: int = 0) -> Query:
        """Trains ``pipeline`` from epoch ``highest`` up to ``epoch`` (freeze-thaw; pure, no state).

        Epochs past the curve's end are not trained (the curve counts as finished); asking for
        ``epoch <= highest`` is a free lookup of the value at ``epoch``.
        """
        i = int(pipeline)
        if not 0 <= i < self.n:
            raise IndexError(f"pipeline {pipeline} is not a candidate of task {self.dataset} (0..{self.n - 1})")
        if epoch < 1:
            raise ValueError(f"epochs are 1-based; got epoch {epoch}")
        last = int(self.n_epochs[i])
        end = min(int(epoch), last)
        start = min(int(highest), last)
        cost = float(self.cost[i, start:end].sum()) if end > start else 0.0
        return Query(float(self.values[i, end - 1]), cost, start, end, end == last)

    def regret(self, accuracy: float | np.ndarray) -> float | np.ndarray:
        """Normalised regret ``(best - acc) / (best - worst)`` in [0, 1]; 1 where ``acc`` is nan."""
        r = normalized_regret(accuracy, self.best, self.worst)
        return float(r) if r.ndim == 0 else r


# ---- loading ---------------------------------------------------------------------------------------------


def load_tasks(store: str | Path, version: str, datasets: list[str] | tuple[str, ...] | None = None) -> list[Task]:
    """The tasks of a store's version, one per dataset (all datasets, or those named, in that order).

    Features are the store's encoded hyperparameters of the whole version (:mod:`metagen.store.encoding`),
    so every task of a version has the same feature columns.
    """
    tables = _version_tables(*store_signature(store), version)
    names = list(tables.arrays) if datasets is None else list(datasets)
    missing = [d for d in names if d not in tables.arrays]
    if missing:
        raise TaskError(f"datasets {missing} not in version '{version}' of {store}; available: {list(tables.arrays)}")
    return [_build_task(tables, d) for d in names]


def list_datasets(store: str | Path, version: str) -> list[str]:
    """Datasets of a version of a store, sorted."""
    return list(_version_tables(*store_signature(store), version).arrays)


def make_context(
    store: str | Path,
    version: str,
    task_dataset: str,
    folds: int = 5,
    seed: int = 42,
    cache_dir: str | Path | None = None,
) -> MetaContext:
    """Meta-training context for a task: the paper's dataset-level fold scheme (``surrogates.folds``; on an imported
    store built from the source's dataset keys in source order, as the reference builds them).

    With at least 3 folds and as many datasets, split ``k`` (the one whose test fold holds the task)
    meta-trains on 3 of 5 folds and selects checkpoints on another (seed 42 in the reference). With
    fewer folds or datasets, the datasets are dealt into ``k`` folds, the task's fold is held out and
    the rest is meta-training (no validation). The task's own dataset is never in train or validation.
    """
    from metagen.store.layout import dataset_keys
    from surrogates.folds import paper_splits  # torch-free

    names = list_datasets(store, version)
    if task_dataset not in names:
        raise TaskError(f"dataset '{task_dataset}' not in version '{version}' of {store}; available: {names}")
    if len(names) < 2:
        raise TaskError(f"version '{version}' of {store} has {len(names)} dataset(s); meta-learning needs at least 2")
    cache = None if cache_dir is None else str(cache_dir)
    k = int(folds)
    if k >= 3 and len(names) >= k:
        keys = dataset_keys(store, version)  # an imported store's source order: the paper's folds
        split = next(s for s in paper_splits(names, k, seed, keys) if task_dataset in s.test)
        return MetaContext(str(store), version, split.train, split.valid, split.index, cache)
    k = max(2, min(k, len(names)))  # few datasets: deal into k folds, hold out the task's, no validation
    fold_of = np.empty(len(names), dtype=np.int64)
    for f, idx in enumerate(np.array_split(np.random.default_rng(seed).permutation(len(names)), k)):
        fold_of[idx] = f
    fold = int(fold_of[names.index(task_dataset)])
    train = tuple(n for n, f in zip(names, fold_of, strict=True) if f != fold)
    return MetaContext(str(store), version, train, (), fold, cache)


@dataclass(frozen=True)
class _VersionTables:
    store: str
    version: str
    arrays: dict  # dataset -> CurveArrays
    features: dict  # run_id -> row index into feature_matrix
    feature_matrix: np.ndarray
    feature_names: tuple[str, ...]
    meta: dict  # dataset -> meta-features


def store_signature(store: str | Path) -> tuple[str, tuple[tuple[str, int, int], ...]]:
    """The store's resolved path and a signature of its files (path, size, mtime): a cache key that
    changes whenever the store does."""
    root = Path(store)
    if not (root / "store.json").is_file():
        raise TaskError(
            f"{store} is not a learning-curve store (no store.json); "
            "make one with `python -m metagen.store synth DEST --profile tiny` or import curves"
        )
    sig = []
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith(".parquet") or f == "store.json":
                st = os.stat(os.path.join(dirpath, f))
                sig.append((os.path.join(dirpath, f), st.st_size, st.st_mtime_ns))
    return str(root.resolve()), tuple(sorted(sig))


@lru_cache(maxsize=4)
def _version_tables(root: str, signature: tuple, version: str) -> _VersionTables:
    reader = StoreReader(root)
    versions = reader.versions()
    if version not in versions:
        raise TaskError(f"version '{version}' not in store {root}; versions there: {versions}")
    arrays = reader.version_arrays(version)
    encoded = reader.encoded_hyperparameters(version)
    names = tuple(c for c in encoded.columns if c not in ("run_id", "pipeline_id"))
    matrix = encoded.select(names).to_numpy().astype(np.float64)
    index = {r: i for i, r in enumerate(encoded["run_id"].to_list())}
    meta_rows = (
        reader.scan_runs(version)
        .select("dataset", *META_FEATURES)
        .sort("dataset")
        .unique("dataset", keep="first", maintain_order=True)
        .collect()
    )
    meta = {
        row["dataset"]: {k: float(row[k]) for k in META_FEATURES if row[k] is not None}
        for row in meta_rows.iter_rows(named=True)
    }
    return _VersionTables(root, version, arrays, index, matrix, names, meta)


def _build_task(t: _VersionTables, dataset: str) -> Task:
    a = t.arrays[dataset]
    values_all = np.asarray(a.values, dtype=np.float64)
    finite = values_all[np.isfinite(values_all)]
    if finite.size == 0:
        raise TaskError(f"dataset '{dataset}' (version '{t.version}') has no finite accuracy in {t.store}")
    keep = _first_per_pipeline(a.pipeline_ids) & (np.asarray(a.n_epochs) > 0)
    rows = np.flatnonzero(keep)
    values, cost = values_all[rows], np.asarray(a.cost, dtype=np.float64)[rows]
    recorded = np.asarray(a.n_epochs, dtype=np.int64)[rows]
    n_epochs = _effective_lengths(values, recorded)
    width = int(n_epochs.max())
    beyond = np.arange(width)[None, :] >= n_epochs[:, None]
    values = np.where(beyond, np.nan, values[:, :width])
    cost = np.where(beyond, np.nan, cost[:, :width])
    run_ids = np.asarray(a.run_ids)[rows]
    features = t.feature_matrix[[t.features[r] for r in run_ids]]
    for arr in (values, cost, n_epochs, features):
        arr.setflags(write=False)
    view = SearchView(
        name=dataset,
        version=t.version,
        pipeline_ids=tuple(str(p) for p in np.asarray(a.pipeline_ids)[rows]),
        models=tuple(str(m) for m in np.asarray(a.models)[rows]),
        features=features,
        feature_names=t.feature_names,
        max_epochs=width,
        meta_features=dict(t.meta.get(dataset, {})),
    )
    return Task(
        view=view,
        values=values,
        cost=cost,
        n_epochs=n_epochs,
        status=np.asarray(a.status)[rows],
        run_ids=run_ids,
        best=float(finite.max()),
        worst=float(finite.min()),
        store=t.store,
    )


def _first_per_pipeline(pipeline_ids: np.ndarray) -> np.ndarray:
    """Mask of the first row of every pipeline id (rows are sorted by run id)."""
    _, first = np.unique(np.asarray(pipeline_ids), return_index=True)
    mask = np.zeros(len(pipeline_ids), dtype=bool)
    mask[first] = True
    return mask


def _effective_lengths(values: np.ndarray, recorded: np.ndarray) -> np.ndarray:
    """Recorded lengths cut at the first nan epoch (a diverged curve ends there), ``(n,)`` int64."""
    width = values.shape[1]
    inside = np.arange(width)[None, :] < recorded[:, None]
    nan_inside = np.isnan(values) & inside
    first_nan = np.where(nan_inside.any(axis=1), nan_inside.argmax(axis=1) + 1, recorded)
    return np.minimum(first_nan, recorded).astype(np.int64)
