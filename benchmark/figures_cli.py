"""Configuration of ``python -m benchmark.figures`` (a Hydra structured config, registered as ``figures``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class FiguresConfig:
    """What to plot from which RESULTS directory, and where to put it."""

    results: str = MISSING  # RESULTS directory written by `python -m benchmark.run`
    out: str = MISSING  # where figures and tables go (created)
    extra_results: list[str] = field(default_factory=list)  # more RESULTS directories to compare (e.g. a peer's)
    fractions: list[float] = field(default_factory=lambda: [0.1, 0.5, 1.0])  # budget fractions: tables, CD diagrams
    grid: str = "log"  # time grid of the over-time figures: log | linear | second (the paper's 1-s grid)
    grid_points: int = 256  # points of the log and linear grids
    alpha: float = 0.05  # significance level of the Friedman / Nemenyi tests
    formats: list[str] = field(default_factory=lambda: ["png", "pdf"])
    dpi: int = 150  # resolution of raster formats
    # Hydra itself: no output folder, no log files, no change of directory.
    defaults: list[Any] = field(
        default_factory=lambda: [
            "_self_",
            {"override hydra/job_logging": "none"},
            {"override hydra/hydra_logging": "none"},
        ]
    )
    hydra: Any = field(default_factory=lambda: {"run": {"dir": "."}, "output_subdir": None})


ConfigStore.instance().store(name="figures", node=FiguresConfig)
