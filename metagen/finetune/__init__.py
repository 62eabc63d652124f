"""Finetuning one pipeline (timm model + Quick-Tune hyperparameters) on one Meta-Album dataset.

``finetune(cfg)`` trains epoch by epoch with a checkpoint after each, and writes the run with its
learning curve into the store. ``python -m metagen.finetune`` is the Hydra command line.
"""

from typing import Any

from metagen.finetune.config import VERSION_CAPS_S, FinetuneConfig
from metagen.finetune.errors import (
    CheckpointMismatchError,
    DatasetNotFoundError,
    FinetuneConfigError,
    HyperparameterError,
    Interrupted,
    OutputNotWritableError,
    StoreMissingError,
    UnknownModelError,
    WeightsUnavailableError,
)
from metagen.finetune.pipeline import resolve_pipeline, run_id_of

_LAZY = {"FinetuneResult", "finetune"}
"""Names of :mod:`metagen.finetune.runner`, imported on first use: it imports torch and timm (seconds), which
configuration, planning and ``--help`` never need."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from metagen.finetune import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "VERSION_CAPS_S",
    "CheckpointMismatchError",
    "DatasetNotFoundError",
    "FinetuneConfig",
    "FinetuneConfigError",
    "FinetuneResult",
    "HyperparameterError",
    "Interrupted",
    "OutputNotWritableError",
    "StoreMissingError",
    "UnknownModelError",
    "WeightsUnavailableError",
    "finetune",
    "resolve_pipeline",
    "run_id_of",
]
