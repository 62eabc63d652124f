"""Configuration of ``python -m surrogates.evaluate`` (Hydra structured config ``surrogates_evaluate``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from metagen.hydra_settings import quiet_defaults, quiet_hydra


@dataclass
class EvaluateConfig:
    """Which store, versions and folds to evaluate the meta-trained predictors on, and where to write."""

    store: str = MISSING  # learning-curve store
    out: str = MISSING  # output folder (results.json, calibration.png, cache/)
    version: str | None = None  # one version (default: every version of the store)
    folds: list[int] | None = None  # split indices to evaluate (default: all)
    n_folds: int = 5  # the paper's dataset-level folds
    split_seed: int = 42  # shuffle seed of the fold assignment (reference: 42)
    episodes: int = 10  # context/query episodes per test dataset
    context_size: int = 32  # observations the GP is conditioned on per episode
    query_size: int = 64  # (pipeline, budget) queries per episode
    cache_dir: str | None = None  # meta-training cache (default: <out>/cache)
    iterations: int = 2000  # meta-training iterations (reference: 10000)
    lr: float = 1e-3  # meta-training learning rate (reference: 1e-4)
    seed: int = 0  # meta-training and episode seed
    defaults: list[Any] = field(default_factory=quiet_defaults)
    hydra: Any = field(default_factory=quiet_hydra)


ConfigStore.instance().store(name="surrogates_evaluate", node=EvaluateConfig)
