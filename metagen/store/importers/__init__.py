"""Importers of the original Quick-Tune meta-dataset and of QuickTuneTool's csv meta-datasets."""

from metagen.store.importers.common import ImportReport, ImportSourceError
from metagen.store.importers.qtt import import_qtt
from metagen.store.importers.quicktune import import_quicktune

__all__ = ["ImportReport", "ImportSourceError", "import_qtt", "import_quicktune"]
