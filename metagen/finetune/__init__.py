"""Finetuning one pipeline (timm model + Quick-Tune hyperparameters) on one Meta-Album dataset.

``finetune(cfg)`` trains epoch by epoch with a checkpoint after each, and writes the run with its
learning curve into the store. ``python -m metagen.finetune`` is the Hydra command line.
"""

from metagen.finetune.config import VERSION_CAPS_S, FinetuneConfig
from metagen.finetune.errors import (
    CheckpointMismatchError,
    DatasetNotFoundError,
    FinetuneConfigError,
    HyperparameterError,
    Interrupted,
    StoreMissingError,
    UnknownModelError,
    WeightsUnavailableError,
)
from metagen.finetune.pipeline import resolve_pipeline, run_id_of
from metagen.finetune.runner import FinetuneResult, finetune

__all__ = [
    "VERSION_CAPS_S",
    "CheckpointMismatchError",
    "DatasetNotFoundError",
    "FinetuneConfig",
    "FinetuneConfigError",
    "FinetuneResult",
    "HyperparameterError",
    "Interrupted",
    "StoreMissingError",
    "UnknownModelError",
    "WeightsUnavailableError",
    "finetune",
    "resolve_pipeline",
    "run_id_of",
]
