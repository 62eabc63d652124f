"""Errors of the sweep launcher: all raised before anything is submitted, with what to do."""

from __future__ import annotations


class SweepError(Exception):
    """Base class of the sweep's errors."""


class SweepConfigError(SweepError, ValueError):
    """The sweep's config asks for something impossible (unknown dataset or model, bad resources, ...)."""


class StoreNotWritableError(SweepError, PermissionError):
    """The store (or the folder it would be created in) cannot be written."""


class ClusterError(SweepError, RuntimeError):
    """The cluster cannot take the sweep (no SLURM commands, jobs of the sweep still running, ...)."""
