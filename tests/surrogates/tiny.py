"""Tiny in-process learning-curve data for surrogate and method tests (no store needed)."""

from __future__ import annotations

import numpy as np

from benchmark.protocol import SearchView
from surrogates.data import TaskData

MODELS = ("model=a", "model=b", "model=c")
NAMES = (*MODELS, "opt=adam", "opt=sgd", "lr", "momentum", "momentum=None", "batch_size")
FAST = {"initial_steps": 2, "initial_epochs": 8, "refine_epochs": 2}
"""A refit schedule small enough for tests."""


def make_table(n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, 10)`` encoded pipelines over :data:`NAMES` (sgd pipelines have a momentum, adam ones not)."""
    model = rng.integers(0, 3, n)
    sgd = rng.random(n) < 0.5
    x = np.zeros((n, len(NAMES)))
    x[np.arange(n), model] = 1.0
    x[:, 3], x[:, 4] = ~sgd, sgd
    x[:, 5] = 10.0 ** rng.uniform(-5, -1, n)
    x[:, 6] = np.where(sgd, rng.choice([0.0, 0.9, 0.99], n), 0.0)
    x[:, 7] = ~sgd
    x[:, 8] = rng.choice([8, 32, 128], n)
    return x


def make_curves(x: np.ndarray, epochs: int, rng: np.random.Generator, offset: float = 0.0) -> tuple[np.ndarray, ...]:
    """Accuracy ``(n, E)`` and cost ``(n, E)`` curves determined by the pipelines (+ small noise).

    Final accuracy peaks at lr = 1e-3 and grows with the model index; cost grows with the model
    index and shrinks with batch size. Every 7th curve stops early (a timeout).
    """
    n = x.shape[0]
    model = x[:, :3].argmax(axis=1)
    final = np.clip(0.9 - 0.12 * np.abs(np.log10(x[:, 5]) + 3.0) - 0.1 * (2 - model) + offset, 0.05, 0.99)
    tau = 1.0 + 2.0 * model
    e = np.arange(1, epochs + 1)
    values = final[:, None] * (1 - np.exp(-e[None, :] / tau[:, None])) + rng.normal(0, 0.005, (n, epochs))
    cost = np.broadcast_to(((1.0 + 3.0 * model) * 64.0 / x[:, 8])[:, None], (n, epochs)).copy()
    stop = np.arange(n) % 7 == 6
    values[stop, epochs // 2 :] = np.nan
    cost[stop, epochs // 2 :] = np.nan
    return np.clip(values, 0.0, 1.0), cost


def make_task(name: str, n: int = 40, epochs: int = 10, seed: int = 0, offset: float = 0.0) -> TaskData:
    """A :class:`TaskData` of ``n`` pipelines with ``epochs``-long curves."""
    rng = np.random.default_rng(seed)
    x = make_table(n, rng)
    values, cost = make_curves(x, epochs, rng, offset)
    meta = {"train_size": 100.0 * (seed + 1), "num_classes": 5.0 + seed, "resolution": 128.0, "channels": 3.0}
    models = tuple(NAMES[i] for i in x[:, :3].argmax(axis=1))
    return TaskData(name, x, NAMES, values, cost, meta, models)


def make_view(task: TaskData) -> SearchView:
    """The :class:`SearchView` of a tiny task (one candidate per run)."""
    return SearchView(
        name=task.name,
        version="micro",
        pipeline_ids=tuple(f"p{i}" for i in range(task.features.shape[0])),
        models=task.models,
        features=task.features,
        feature_names=task.feature_names,
        max_epochs=task.max_epochs,
        meta_features=dict(task.meta),
    )


def run_loop(optimizer, task: TaskData, steps: int) -> list[tuple[int, int]]:
    """Drives ``optimizer`` for ``steps`` asks on ``task``'s curves; returns the asks as (pipeline, epoch).

    Checks every ask: a known pipeline, not finished, not pending, an epoch above its highest
    trained one and within ``1..E``. Epochs past a curve's end are not trained (``last`` is set at it).
    """
    from benchmark.protocol import EpochResult

    n, epochs = task.values.shape
    length = task.n_valid
    highest = np.zeros(n, dtype=int)
    finished = np.zeros(n, dtype=bool)
    asks = []
    for _ in range(steps):
        ask = optimizer.ask()
        if ask is None:
            break
        i, e = ask.pipeline, ask.epoch
        assert 0 <= i < n and not finished[i], f"asked for finished or unknown pipeline {i}"
        assert highest[i] < e <= epochs, f"asked epoch {e} of pipeline {i} (highest {highest[i]}, E {epochs})"
        asks.append((i, e))
        results = []
        for epoch in range(highest[i] + 1, min(e, length[i]) + 1):
            last = epoch == length[i]
            r = EpochResult(i, epoch, float(task.values[i, epoch - 1]), float(task.cost[i, epoch - 1]), last)
            optimizer.on_epoch(r)
            results.append(r)
            highest[i] = epoch
            finished[i] |= last
        optimizer.tell(ask, results)
    return asks
