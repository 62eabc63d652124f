"""Errors of the finetuning runner: configuration errors raise before any training."""

from __future__ import annotations


class FinetuneConfigError(ValueError):
    """A configuration value is invalid (unknown model, bad hyperparameter value, ...)."""


class UnknownModelError(FinetuneConfigError):
    """The model is not in the search space (the message lists the allowed names)."""


class HyperparameterError(FinetuneConfigError):
    """A hyperparameter is unknown, has a value outside its list, or is inactive."""


class DatasetNotFoundError(FileNotFoundError):
    """The dataset folder does not exist or is not a Meta-Album dataset."""


class WeightsUnavailableError(FileNotFoundError):
    """Pretrained weights were asked for but cannot be had (offline and not cached, or a missing file)."""


class OutputNotWritableError(FinetuneConfigError):
    """The store or the checkpoint folder cannot be written (found before training, not after it)."""


class CheckpointMismatchError(FinetuneConfigError):
    """A checkpoint of this run id was written by an incompatible configuration."""


class Interrupted(Exception):
    """``should_stop()`` asked the run to stop; the last completed epoch's checkpoint is on disk."""

    def __init__(self, run_id: str, epoch: int):
        super().__init__(f"run {run_id} interrupted after epoch {epoch}; its checkpoint is on disk, rerun to resume")
        self.run_id = run_id
        self.epoch = epoch


class StoreMissingError(FileNotFoundError):
    """The store to write into does not exist (create it with ``python -m metagen.store create``)."""


class DatasetContentError(FinetuneConfigError):
    """The store holds runs of a dataset of this name trained on other content (another fingerprint)."""
