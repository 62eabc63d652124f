"""Learning-curve data for the surrogates: per-dataset arrays, content hashing and input batches.

A :class:`TaskData` holds one dataset's curves as numpy arrays (loaded from a store or built in a
test); :class:`Batch` is the surrogates' input as torch tensors. Inputs of a (pipeline, budget ``b``)
pair: the encoded pipeline, ``b / E``, the observed accuracies ``y_1..y_{b-1}`` zero-padded to ``E``
(``nan`` of a diverged epoch -> 0) and the dataset's scaled meta-features; targets: ``y_b`` and the
cost (seconds) of epoch ``b``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from surrogates.encoding import META_FEATURES, MetaFeatureScaler, PipelineEncoder


@dataclass(frozen=True)
class TaskData:
    """One dataset's learning curves.

    Attributes:
        name: dataset name.
        features: ``(n, d)`` unscaled encoded pipelines (one row per run).
        feature_names: ``(d,)`` column names of ``features``.
        values: ``(n, E)`` accuracies in [0, 1]; ``nan`` where not trained or diverged.
        cost: ``(n, E)`` seconds per epoch; ``nan`` where not trained.
        meta: the dataset's meta-features (``train_size``, ``num_classes``, ``resolution``, ``channels``).
        models: ``(n,)`` model name per run.
    """

    name: str
    features: np.ndarray
    feature_names: tuple[str, ...]
    values: np.ndarray
    cost: np.ndarray
    meta: Mapping[str, float] = field(default_factory=dict)
    models: tuple[str, ...] = ()

    @property
    def max_epochs(self) -> int:
        """``E``, the width of the curve arrays."""
        return int(self.values.shape[1])

    @property
    def n_valid(self) -> np.ndarray:
        """``(n,)`` number of leading epochs with a finite accuracy (usable as targets)."""
        finite = np.isfinite(self.values)
        return np.where(finite.all(axis=1), finite.shape[1], np.argmin(finite, axis=1))

    def final(self) -> np.ndarray:
        """``(n,)`` last finite accuracy per run (``nan`` if none)."""
        k = self.n_valid
        out = np.full(len(k), np.nan)
        ok = k > 0
        out[ok] = self.values[np.flatnonzero(ok), k[ok] - 1]
        return out


def load_store_tasks(store: str, version: str, datasets: Sequence[str] | None = None) -> list[TaskData]:
    """:class:`TaskData` of ``datasets`` (default: all) of one version of a store, sorted by name."""
    import polars as pl

    from metagen.store import StoreReader

    reader = StoreReader(store)
    arrays = reader.version_arrays(version)
    if not arrays:
        raise ValueError(f"store {store} has no runs of version {version!r}; versions: {reader.versions()}")
    names = sorted(arrays) if datasets is None else sorted(datasets)
    missing = [d for d in names if d not in arrays]
    if missing:
        raise ValueError(f"datasets {missing} have no runs of version {version!r} in {store}; have {sorted(arrays)}")
    runs = reader.scan_runs(version).collect()
    models = sorted(runs["model"].unique().to_list())
    enc = reader.encoded_hyperparameters(version, models=models)
    feature_names = tuple(c for c in enc.columns if c not in ("run_id", "pipeline_id"))
    by_run = {r: i for i, r in enumerate(enc["run_id"].to_list())}
    table = enc.select(feature_names).to_numpy().astype(np.float64)
    metas = runs.group_by("dataset").agg([pl.col(k).first() for k in META_FEATURES])
    meta_of = {  # an unknown (NULL) meta-feature is left out: MetaFeatureScaler names it if it is needed
        row["dataset"]: {k: float(row[k]) for k in META_FEATURES if row[k] is not None}
        for row in metas.iter_rows(named=True)
    }
    out = []
    for d in names:
        a = arrays[d]
        rows = np.array([by_run[r] for r in a.run_ids], dtype=np.int64)
        out.append(
            TaskData(d, table[rows], feature_names, a.values.astype(np.float64), a.cost.astype(np.float64),
                     meta_of[d], tuple(str(m) for m in a.models))
        )  # fmt: skip
    return out


def content_hash(tasks: Sequence[TaskData]) -> str:
    """A hash of the data itself (names, encoded pipelines, curves, costs, meta-features)."""
    h = hashlib.sha256()
    for t in sorted(tasks, key=lambda t: t.name):
        h.update(t.name.encode())
        h.update("|".join(t.feature_names).encode())
        for arr in (t.features, t.values, t.cost):
            h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
        h.update(repr(sorted(t.meta.items())).encode())
    return h.hexdigest()[:16]


class BatchArrays(NamedTuple):
    """A :class:`Batch` as float32 numpy arrays (same fields and shapes): what compiled code consumes."""

    x: np.ndarray
    budget: np.ndarray
    curve: np.ndarray
    meta: np.ndarray
    y: np.ndarray
    cost: np.ndarray


@dataclass
class Batch:
    """Surrogate inputs and targets of ``B`` (pipeline, budget) pairs.

    Attributes:
        x: ``(B, D)`` scaled encoded pipelines (model one-hot first).
        budget: ``(B, 1)`` budget ``b / E``.
        curve: ``(B, E)`` accuracies ``y_1..y_{b-1}``, zero-padded.
        meta: ``(B, 4)`` scaled meta-features.
        y: ``(B,)`` accuracy at ``b`` (``nan`` if unknown).
        cost: ``(B,)`` seconds of epoch ``b`` (``nan`` if unknown).
    """

    x: torch.Tensor
    budget: torch.Tensor
    curve: torch.Tensor
    meta: torch.Tensor
    y: torch.Tensor
    cost: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, dtype: torch.dtype) -> Batch:
        """The batch with every tensor in ``dtype`` (itself when it already is)."""
        if all(getattr(self, f).dtype == dtype for f in ("x", "budget", "curve", "meta", "y", "cost")):
            return self
        return Batch(*(getattr(self, f).to(dtype) for f in ("x", "budget", "curve", "meta", "y", "cost")))

    @classmethod
    def from_arrays(cls, arrays: BatchArrays) -> Batch:
        """The batch of ``arrays`` (sharing their memory)."""
        return cls(*(torch.as_tensor(a) for a in arrays))

    def arrays(self) -> BatchArrays:
        """The batch as numpy arrays (views of the tensors)."""
        return BatchArrays(*(getattr(self, f).detach().numpy() for f in BatchArrays._fields))

    def subset(self, idx: np.ndarray | torch.Tensor) -> Batch:
        """Rows ``idx`` of the batch."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        return Batch(*(getattr(self, f)[idx] for f in ("x", "budget", "curve", "meta", "y", "cost")))


def make_batch(
    x: np.ndarray,
    budgets: np.ndarray,
    curves: np.ndarray,
    max_epochs: int,
    meta: np.ndarray,
    y: np.ndarray | None = None,
    cost: np.ndarray | None = None,
) -> Batch:
    """A :class:`Batch` from numpy inputs.

    Args:
        x: ``(B, D)`` scaled pipelines.
        budgets: ``(B,)`` integer budgets ``b`` (1-based).
        curves: ``(B, any)`` observed accuracies (cut or zero-padded to ``E``); only ``y_1..y_{b-1}``
            of each row is used.
        max_epochs: ``E``.
        meta: ``(4,)`` or ``(B, 4)`` scaled meta-features.
        y, cost: ``(B,)`` targets (``nan`` when absent).
    """
    raw = np.asarray(curves, dtype=np.float64)[:, :max_epochs]
    raw = np.pad(raw, ((0, 0), (0, max_epochs - raw.shape[1])))
    return Batch.from_arrays(_batch_arrays(x, budgets, np.nan_to_num(raw, nan=0.0), meta, y, cost))


def _batch_arrays(
    x: np.ndarray,
    budgets: np.ndarray,
    curves: np.ndarray,
    meta: np.ndarray,
    y: np.ndarray | None = None,
    cost: np.ndarray | None = None,
) -> BatchArrays:
    """:func:`make_batch`'s arrays from ``curves`` already ``(B, E)`` wide and without NaN (``E`` is their width)."""
    n, max_epochs = curves.shape
    b = np.asarray(budgets, dtype=np.int64)
    prefix = np.arange(max_epochs)[None, :] < (b[:, None] - 1)
    nan = np.full(n, np.nan)
    return BatchArrays(
        x=np.asarray(x, dtype=np.float32),
        budget=(b / max_epochs).astype(np.float32)[:, None],
        curve=np.where(prefix, curves, 0.0).astype(np.float32),
        meta=np.array(np.broadcast_to(np.asarray(meta, dtype=np.float32), (n, 4)), dtype=np.float32),
        y=(nan if y is None else np.asarray(y, dtype=np.float64)).astype(np.float32),
        cost=(nan if cost is None else np.asarray(cost, dtype=np.float64)).astype(np.float32),
    )


class EncodedTask:
    """A :class:`TaskData` with its pipelines and meta-features scaled, ready for sampling batches."""

    def __init__(self, task: TaskData, encoder: PipelineEncoder, meta_scaler: MetaFeatureScaler, max_epochs: int):
        self.task = task
        self.max_epochs = max_epochs
        self.x = encoder.transform(task.features, task.feature_names)
        self.meta = meta_scaler.transform(task.meta) if task.meta else np.zeros(4, dtype=np.float32)
        width = task.values.shape[1]
        pad = max(0, max_epochs - width)
        self.values = np.pad(task.values[:, :max_epochs], ((0, 0), (0, pad)), constant_values=np.nan)
        self.cost = np.pad(task.cost[:, :max_epochs], ((0, 0), (0, pad)), constant_values=np.nan)
        self._curves = np.nan_to_num(self.values, nan=0.0)  # make_batch's curve values, computed once
        self.n_valid = np.minimum(task.n_valid, max_epochs)
        self.usable = np.flatnonzero(self.n_valid > 0)
        if self.usable.size == 0:
            raise ValueError(f"dataset {task.name!r} has no run with a finite accuracy")

    def sample(self, rng: np.random.Generator, size: int) -> Batch:
        """``size`` random (run, budget) pairs: a run, then a budget uniform over its valid epochs."""
        return Batch.from_arrays(self.sample_arrays(rng, size))

    def sample_arrays(self, rng: np.random.Generator, size: int) -> BatchArrays:
        """:meth:`sample` as numpy arrays (the same draws from ``rng``, the same values as :func:`make_batch`'s)."""
        runs = rng.choice(self.usable, size=size, replace=True)
        budgets = 1 + (rng.random(size) * self.n_valid[runs]).astype(np.int64)
        return _batch_arrays(self.x[runs], budgets, self._curves[runs], self.meta,
                             y=self.values[runs, budgets - 1], cost=self.cost[runs, budgets - 1])  # fmt: skip

    def batch(self, runs: np.ndarray, budgets: np.ndarray, with_curve: bool = True) -> Batch:
        """The batch of given (run, budget) pairs (``with_curve=False``: all-zero curves)."""
        curves = self.values[runs] if with_curve else np.zeros((len(runs), self.max_epochs))
        return make_batch(
            self.x[runs], budgets, curves, self.max_epochs, self.meta,
            y=self.values[runs, budgets - 1], cost=self.cost[runs, budgets - 1],
        )  # fmt: skip
