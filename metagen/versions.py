"""The version table: per dataset version, its per-run cap, epoch budget, LR-schedule length and HPO budget.

This module is the one home of these numbers. ``FinetuneConfig``, ``SweepConfig`` and its SLURM cluster
config, ``benchmark.task.default_budget`` and the Hydra files ``conf/version/<v>.yaml`` (through the
``version_table`` resolver, :func:`register_resolver`) all read them from here. Imports nothing of the project.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SLURM_MARGIN_MIN = 15
"""Minutes of SLURM job time added to a run's cap for loading, evaluation and writing."""


@dataclass(frozen=True)
class Version:
    """One dataset version.

    Attributes:
        name: the version's name (part of every run id).
        cap_s: wall-clock cap per finetuning run in seconds (of train + eval time).
        epochs: epoch budget per run.
        schedule_epochs: length of the LR schedule (and the LP-FT switch point at half of it).
        budget_s: default HPO budget of a benchmark replay in simulated seconds (``None``: pass ``budget_s``).
    """

    name: str
    cap_s: float
    epochs: int
    schedule_epochs: int
    budget_s: float | None

    @property
    def time_min_per_run(self) -> int:
        """SLURM minutes granted per run: the cap plus :data:`SLURM_MARGIN_MIN`."""
        return slurm_minutes(self.cap_s)


VERSIONS: dict[str, Version] = {
    # Meta-Album versions (reference §2.4): 1 h / 4 h / 16 h per run, 50 epochs; the HPO budget of
    # Quick-Tune's run scripts equals the cap.
    "micro": Version("micro", cap_s=3600.0, epochs=50, schedule_epochs=50, budget_s=3600.0),
    "mini": Version("mini", cap_s=14400.0, epochs=50, schedule_epochs=50, budget_s=14400.0),
    "extended": Version("extended", cap_s=57600.0, epochs=50, schedule_epochs=50, budget_s=57600.0),
    # The earlier bundled CPU meta-dataset (qt-cpu10, conf/suite/cpu10.yaml at 32 px; removed from the repository
    # when stores/offline10-64px replaced it, still in its git history): 60 s per run, 20 epochs with the schedule
    # laid out over them. No default HPO budget.
    "cpu10": Version("cpu10", cap_s=60.0, epochs=20, schedule_epochs=20, budget_s=None),
    # The bundled meta-dataset stores/offline10-64px: 20 epochs with the schedule laid out over them, and a
    # 600 s cap of train+eval time that guards against stuck runs without cutting curves (conf/version/offline64.yaml).
    # HPO budget = the cap, as for Meta-Album: about 7 average runs of 20 epochs (86 CPU s each), about a quarter
    # of a dataset's 30-pipeline table.
    "offline64": Version("offline64", cap_s=600.0, epochs=20, schedule_epochs=20, budget_s=600.0),
}
"""Every version with defaults; other names are allowed wherever a version is named, without defaults."""

META_ALBUM = ("micro", "mini", "extended")
"""The paper's Meta-Album versions."""

DEFAULT_VERSION = "micro"
DEFAULT_EPOCHS = VERSIONS[DEFAULT_VERSION].schedule_epochs
"""The reference's epoch budget, also the length of its LR schedule (reference §2.1.7)."""


def slurm_minutes(cap_s: float) -> int:
    """SLURM minutes for a run capped at ``cap_s`` seconds: the cap in minutes plus :data:`SLURM_MARGIN_MIN`."""
    return math.ceil(cap_s / 60) + SLURM_MARGIN_MIN


def cap_s(version: str) -> float | None:
    """The per-run cap of a version, ``None`` for a version without defaults."""
    v = VERSIONS.get(version)
    return None if v is None else v.cap_s


def budgets_s() -> dict[str, float]:
    """The default HPO budget of every version that has one."""
    return {name: v.budget_s for name, v in VERSIONS.items() if v.budget_s is not None}


def table_value(version: str, field: str) -> float | int:
    """``VERSIONS[version].<field>``, for the ``version_table`` resolver of ``conf/version/<v>.yaml``."""
    if version not in VERSIONS:
        raise KeyError(f"version {version!r} is not in metagen/versions.py (known: {sorted(VERSIONS)})")
    value = getattr(VERSIONS[version], field, None)
    if not isinstance(value, int | float):
        raise KeyError(f"version table field {field!r} is not a number; use cap_s, epochs or schedule_epochs")
    return value


def register_resolver() -> None:
    """Registers the OmegaConf resolver ``${version_table:<version>,<field>}`` (idempotent)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("version_table"):
        OmegaConf.register_new_resolver("version_table", table_value)
