"""The one protocol every optimizer of the benchmark speaks: ``ask`` / ``tell`` plus a per-epoch hook.

The replay loop (``benchmark.replay``) owns the task's curves and the simulated clock; an optimizer
only ever sees the **candidate set** (:class:`SearchView`: encoded pipelines, models, meta-features,
the epoch budget) and the results of what it asked for. Freeze-thaw semantics: a pipeline is
identified by its index in the candidate set; asking for ``Ask(i, epoch=b)`` trains pipeline ``i``
from its highest trained epoch up to ``b`` (only the new epochs are charged), so an optimizer that
wants one more epoch asks for ``highest + 1`` and one that wants a full evaluation asks for
``max_epochs``. Asking for an epoch at or below the highest trained epoch is a lookup at no cost.

Values are **accuracies in [0, 1]** (higher is better), ``nan`` for an epoch where the run diverged.

This module imports neither torch nor timm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class SearchView:
    """What an optimizer may know about a task before observing anything.

    Attributes:
        name: dataset name of the task.
        version: meta-dataset version (``micro``/``mini``/``extended`` or a store's own).
        pipeline_ids: ``(n,)`` stable pipeline ids of the candidates (index = candidate id).
        models: ``(n,)`` timm model name of each candidate.
        features: ``(n, d)`` float64 encoded hyperparameters (model one-hot first, then
            hyperparameters, inactive conditionals as explicit indicators; unscaled).
        feature_names: ``(d,)`` column names of ``features``.
        max_epochs: epoch budget of the task (the longest recorded curve).
        meta_features: dataset meta-features (``train_size``, ``num_classes``, ``resolution``, ``channels``).
    """

    name: str
    version: str
    pipeline_ids: tuple[str, ...]
    models: tuple[str, ...]
    features: np.ndarray
    feature_names: tuple[str, ...]
    max_epochs: int
    meta_features: Mapping[str, float] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of candidate pipelines."""
        return len(self.pipeline_ids)


@dataclass(frozen=True)
class MetaContext:
    """What a meta-learning method may use besides the task: other datasets of the same store.

    Attributes:
        store: root of the learning-curve store.
        version: the version the task belongs to.
        train_datasets: datasets it may meta-train on (never the task's own dataset).
        valid_datasets: datasets for checkpoint selection (disjoint from train and the task).
        fold: index of the dataset-level fold the task falls in (cache key for meta-trained models).
        cache_dir: where meta-trained models may be cached (``None`` = no cache).
    """

    store: str
    version: str
    train_datasets: tuple[str, ...]
    valid_datasets: tuple[str, ...] = ()
    fold: int = 0
    cache_dir: str | None = None


@dataclass(frozen=True)
class Ask:
    """Train candidate ``pipeline`` up to ``epoch`` (1-based, inclusive), resuming from its checkpoint."""

    pipeline: int
    epoch: int


@dataclass(frozen=True)
class EpochResult:
    """One trained epoch of a pipeline, as the replay reports it.

    Attributes:
        pipeline: candidate index.
        epoch: 1-based epoch.
        value: validation accuracy in [0, 1]; ``nan`` if the run diverged at or before this epoch.
        cost: seconds charged for this epoch (recorded train + eval time; 0 for a lookup).
        last: True when this is the last epoch the pipeline can ever give (its recorded curve ends:
            budget reached, truncated by the generation cap, or diverged); asking it for more is an error.
    """

    pipeline: int
    epoch: int
    value: float
    cost: float
    last: bool


@runtime_checkable
class Optimizer(Protocol):
    """An HPO method on a finite candidate set.

    ``ask`` returns the next training step, or ``None`` when the method has nothing left to ask.
    ``on_epoch`` is called for every epoch as it finishes (before ``tell``); returning ``False``
    stops that step early (e.g. a stopping rule). ``tell`` receives every epoch the step trained.
    With several simulated workers, ``ask`` may be called again before earlier asks are told; a
    ``None`` while steps are still in flight means "nothing now" (the replay asks again after the
    next ``tell``), a ``None`` with nothing in flight ends the replay.
    """

    def ask(self) -> Ask | None: ...

    def on_epoch(self, result: EpochResult) -> bool: ...

    def tell(self, ask: Ask, results: Sequence[EpochResult]) -> None: ...


class BaseOptimizer:
    """Book-keeping shared by optimizers: the view, a seeded generator, and what has been observed.

    Attributes:
        view: the task's candidate set.
        rng: the optimizer's own generator (no global RNG anywhere).
        highest: ``(n,)`` int, highest epoch trained per candidate (0 = never trained).
        finished: ``(n,)`` bool, candidates whose curve can give nothing more.
        curves: ``(n, max_epochs)`` float, observed accuracies (``nan`` = not observed or diverged).
        pending: candidates currently being trained by a simulated worker.
    """

    def __init__(self, view: SearchView, seed: int, **options: Any):
        if options:
            raise TypeError(f"{type(self).__name__} got options it does not take: {sorted(options)}")
        self.view = view
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.options = options
        self.highest = np.zeros(view.n, dtype=np.int64)
        self.finished = np.zeros(view.n, dtype=bool)
        self.curves = np.full((view.n, view.max_epochs), np.nan)
        self.pending: set[int] = set()

    def issue(self, pipeline: int, epoch: int) -> Ask:
        """Marks ``pipeline`` as being trained (see :meth:`available`) and returns the ask; use it in ``ask``."""
        self.pending.add(int(pipeline))
        return Ask(int(pipeline), int(epoch))

    def on_epoch(self, result: EpochResult) -> bool:
        """Records the epoch; never stops a step early (override for stopping rules)."""
        self._record(result)
        return True

    def tell(self, ask: Ask, results: Sequence[EpochResult]) -> None:
        """Records the step's epochs (idempotent with ``on_epoch``) and frees the candidate."""
        for result in results:
            self._record(result)
        self.pending.discard(ask.pipeline)

    def _record(self, result: EpochResult) -> None:
        i, e = result.pipeline, result.epoch
        self.curves[i, e - 1] = result.value
        self.highest[i] = max(self.highest[i], e)
        if result.last:
            self.finished[i] = True

    def available(self) -> np.ndarray:
        """Indices of candidates that can still be trained and are not being trained now."""
        mask = ~self.finished & (self.highest < self.view.max_epochs)
        if self.pending:
            mask[list(self.pending)] = False
        return np.flatnonzero(mask)

    def best_observed(self) -> float:
        """Highest non-diverged accuracy observed so far (``-inf`` before any)."""
        finite = self.curves[np.isfinite(self.curves)]
        return float(finite.max()) if finite.size else float("-inf")
