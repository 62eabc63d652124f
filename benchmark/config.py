"""Structured config of ``python -m benchmark.run`` (registered with Hydra's ConfigStore as ``benchmark_schema``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class RunConfig:
    """One benchmark run: methods x datasets x seeds of one version of a store.

    Attributes:
        store: learning-curve store to replay.
        out: RESULTS directory (cells already there are skipped).
        version: meta-dataset version (``micro`` | ``mini`` | ``extended`` or the store's own).
        methods: registered method names (``benchmark.registry.METHODS``).
        seeds: optimizer seeds.
        datasets: datasets of the version to use (``null`` = all).
        budget_s: simulated seconds per replay (``null`` = the version's default: 3600/14400/57600).
        workers: simulated parallel workers per replay.
        overhead: optimizer overhead charged to the simulated clock: ``none`` | ``measured`` | seconds per step.
        jobs: local processes replaying cells in parallel.
        folds: dataset-level folds for meta-learning methods (the task's fold is held out).
        context_seed: seed of the fold assignment (42 as in the reference).
        cache_dir: where meta-learning methods may cache meta-trained models (``null`` = no cache).
        method_options: per-method option overrides, e.g. ``{default_model: {model: dla46x_c}}``.
        progress: show a progress bar.
    """

    store: str = MISSING
    out: str = MISSING
    version: str = "micro"
    methods: list[str] = field(default_factory=lambda: ["random_search", "hyperband", "asha", "bohb"])
    seeds: list[int] = field(default_factory=lambda: [0])
    datasets: list[str] | None = None
    budget_s: float | None = None
    workers: int = 1
    overhead: str = "none"
    jobs: int = 1
    folds: int = 5
    context_seed: int = 42
    cache_dir: str | None = None
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    progress: bool = True


def register_configs() -> None:
    """Registers :class:`RunConfig` as ``benchmark_schema`` (``conf/benchmark/run.yaml`` extends it)."""
    ConfigStore.instance().store(name="benchmark_schema", node=RunConfig)
