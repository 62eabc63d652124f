"""Hydra settings of the commands whose structured config carries them itself (``benchmark.figures``,
``surrogates.evaluate``): no log files, no output folder, no change of directory. Imports nothing of the project."""

from __future__ import annotations

from typing import Any


def quiet_defaults() -> list[Any]:
    """The defaults list: this config first, Hydra's logging configs off."""
    return ["_self_", {"override hydra/job_logging": "none"}, {"override hydra/hydra_logging": "none"}]


def quiet_hydra() -> dict[str, Any]:
    """The ``hydra`` node: run in the current directory, write no ``.hydra`` folder."""
    return {"run": {"dir": "."}, "output_subdir": None}
