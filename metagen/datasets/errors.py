"""Errors raised for bad datasets, bad generator arguments and unavailable sources.

Every error names the offending file, class or argument and says what to do about it.
"""

from __future__ import annotations


class DatasetError(Exception):
    """Base class of every error of :mod:`metagen.datasets`."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset folder does not exist."""


class LayoutError(DatasetError):
    """The folder is not in the Meta-Album layout (labels.csv, info.json, images/)."""


class InfoError(DatasetError):
    """``info.json`` is unreadable, not a JSON object, or names columns that do not exist."""


class LabelsError(DatasetError):
    """``labels.csv`` is unreadable, lacks its columns, or has empty or duplicate rows."""


class MissingImageError(DatasetError):
    """``labels.csv`` lists images that are not in ``images/``."""


class UnlabeledImageError(DatasetError):
    """``images/`` holds images that ``labels.csv`` does not list."""


class UnreadableImageError(DatasetError):
    """An image file cannot be decoded (empty, truncated or not an image)."""


class SplitError(DatasetError):
    """The 60/20/20 split leaves a split empty or a class without training images."""


class SourceUnavailableError(DatasetError):
    """The raw data a generator kind needs (a package, fonts) is not installed here."""


class GeneratorArgumentError(DatasetError, ValueError):
    """A generator argument is out of range (unknown kind, too many classes, bad resolution...)."""


class OutputExistsError(DatasetError, FileExistsError):
    """The output folder is not empty and overwriting was not asked for."""
