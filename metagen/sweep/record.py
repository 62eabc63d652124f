"""The sweep directory's records: the plan of the last launch (``plan.json``) and a launch history.

::

    <sweep_dir>/
      plan.json          every run of the sweep (RunSpec), the config, the last launch's jobs
      launches.jsonl     one line per launch: when, how many runs planned / complete / submitted, job ids
      jobs/<stamp>/      submitit folders (one per launch: scripts, pickles, logs)
      failures/          <run_id>.json for runs that raised before or outside training
      checkpoints/       <run_id>/ epoch checkpoints (finetune) and _sweep/ (requeue counters, locks)

``plan.json`` is what ``python -m metagen.sweep.status`` compares the store with.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from metagen.sweep.plan import Plan, RunSpec

PLAN_FILE = "plan.json"
LAUNCHES_FILE = "launches.jsonl"
FORMAT = "metagen-sweep-plan"


@dataclass(frozen=True)
class PlanRecord:
    """A sweep's plan as written at launch.

    Attributes:
        name: sweep name.
        store: store path (absolute).
        version: dataset version.
        runs: every run of the sweep.
        created_at: ISO time of the launch.
        config: the resolved sweep config (plain dict).
        launch: the last launch: cluster kind, submitit folder, job ids.
        checkpoint_dir: where the runs' checkpoints live.
        sweep_dir: the sweep directory.
    """

    name: str
    store: str
    version: str
    runs: tuple[RunSpec, ...]
    created_at: str
    config: dict[str, Any] = field(default_factory=dict)
    launch: dict[str, Any] = field(default_factory=dict)
    checkpoint_dir: str = ""
    sweep_dir: str = ""

    def to_json(self) -> str:
        """The record as JSON text."""
        d = {
            "format": FORMAT,
            "name": self.name,
            "store": self.store,
            "version": self.version,
            "created_at": self.created_at,
            "checkpoint_dir": self.checkpoint_dir,
            "sweep_dir": self.sweep_dir,
            "launch": self.launch,
            "config": self.config,
            "runs": [r.to_dict() for r in self.runs],
        }
        return json.dumps(d, indent=1, sort_keys=True, default=str) + "\n"

    @classmethod
    def read(cls, path: str | Path) -> PlanRecord:
        """Read a ``plan.json``.

        Raises:
            ValueError: not a sweep plan file (names the file).
        """
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: not a readable sweep plan ({e}); relaunch the sweep to rewrite it") from e
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"{path} is not a metagen sweep plan (format {FORMAT!r})")
        return cls(
            name=d["name"],
            store=d["store"],
            version=d["version"],
            runs=tuple(RunSpec.from_dict(r) for r in d["runs"]),
            created_at=d["created_at"],
            config=d.get("config", {}),
            launch=d.get("launch", {}),
            checkpoint_dir=d.get("checkpoint_dir", ""),
            sweep_dir=d.get("sweep_dir", str(path.parent)),
        )


def now_iso() -> str:
    """The current UTC time, ISO format, seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_plan(sweep_dir: str | Path, record: PlanRecord) -> Path:
    """Write ``plan.json`` atomically; returns its path."""
    path = Path(sweep_dir) / PLAN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{PLAN_FILE}.{os.getpid()}.tmp")
    tmp.write_text(record.to_json())
    os.replace(tmp, path)
    return path


def append_launch(sweep_dir: str | Path, plan: Plan, info: dict[str, Any]) -> None:
    """Append one line about a launch to ``launches.jsonl``."""
    line = {
        "at": now_iso(),
        "planned": len(plan.runs),
        "complete": len(plan.complete),
        "submitted": len(plan.todo),
        **info,
    }
    with open(Path(sweep_dir) / LAUNCHES_FILE, "a") as fh:
        fh.write(json.dumps(line, sort_keys=True, default=str) + "\n")


def find_plans(store: str | Path) -> list[Path]:
    """Plan files of sweeps of this store in the default place (``<store>.sweeps/*/plan.json``)."""
    store = Path(store).expanduser().resolve()
    return sorted((store.parent / f"{store.name}.sweeps").glob(f"*/{PLAN_FILE}"))
