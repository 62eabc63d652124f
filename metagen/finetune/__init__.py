"""Finetuning one pipeline (timm model + Quick-Tune hyperparameters) on one Meta-Album dataset.

``finetune(cfg)`` trains epoch by epoch with a checkpoint after each, and writes the run with its
learning curve into the store. ``python -m metagen.finetune`` is the Hydra command line.
The config and error classes import no torch; ``finetune``, ``FinetuneResult``, ``resolve_pipeline`` and
``run_id_of`` are imported on first use (torch and timm take seconds, which configuration, planning and
``--help`` never need; ``metagen.sweep`` extends the config without torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from metagen.finetune.config import FinetuneConfig
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

if TYPE_CHECKING:
    from metagen.finetune.pipeline import resolve_pipeline, run_id_of
    from metagen.finetune.runner import FinetuneResult, finetune

_LAZY = {
    "resolve_pipeline": "metagen.finetune.pipeline",
    "run_id_of": "metagen.finetune.pipeline",
    "FinetuneResult": "metagen.finetune.runner",
    "finetune": "metagen.finetune.runner",
}


def __getattr__(name: str) -> Any:
    """The torch-importing names, imported on first use."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'metagen.finetune' has no attribute {name!r}")


__all__ = [
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
