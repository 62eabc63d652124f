"""Downloading the paper's data for users with internet: the Quick-Tune meta-dataset archives and the
Meta-Album datasets (``python -m metagen.fetch``; see :mod:`metagen.fetch.sources`)."""

from metagen.fetch.download import Expected, FetchError, download, extract_zip
from metagen.fetch.sources import Fetched, Mirrors, fetch_openml_dataset, fetch_quicktune

__all__ = [
    "Expected",
    "FetchError",
    "Fetched",
    "Mirrors",
    "download",
    "extract_zip",
    "fetch_openml_dataset",
    "fetch_quicktune",
]
