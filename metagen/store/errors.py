"""Errors of the learning-curve store; each message names the file or run and what to do."""

from __future__ import annotations

from collections.abc import Sequence

from metagen.store.schema import Problem


class StoreError(Exception):
    """Base class of every store error."""


class StoreNotFoundError(StoreError):
    """The path is not a store (no ``store.json``)."""


class ValidationError(StoreError):
    """Data that breaks the schema; carries every problem found."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        shown = "\n  ".join(str(p) for p in self.problems[:20])
        more = f"\n  ... and {len(self.problems) - 20} more" if len(self.problems) > 20 else ""
        super().__init__(f"{len(self.problems)} problem(s):\n  {shown}{more}")


class RunConflictError(StoreError):
    """A run id that is already stored with different content."""


class CorruptFileError(StoreError):
    """A Parquet file that cannot be read (truncated, overwritten or not Parquet)."""


class SchemaVersionError(StoreError):
    """A file or store written with another schema version."""


class CompactionLockedError(StoreError):
    """Another ``compact`` holds the store's lock."""


class StoreNotWritableError(StoreError):
    """The store (or the folder it would be created in) cannot be written; found before any work is done."""


class DatasetFolderError(StoreError):
    """A dataset folder given for a store's quality report is missing, unreadable or does not match its runs."""
