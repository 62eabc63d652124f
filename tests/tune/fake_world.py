"""A fake world for tuning sessions: steps "train" instantly from seeded synthetic curves, kept on a fake disk
that outlives a simulated kill, and finish in the order they started (deterministic asynchrony)."""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metagen.tune.worker import EpochRow, StepOutcome


class Killed(BaseException):
    """The simulated SIGKILL (a BaseException: nothing in the session catches it)."""


def synthetic_curve(run_id: str, epochs: int) -> tuple[list[EpochRow], bool]:
    """A saturating curve and per-epoch costs seeded by the run id; ``True`` when it diverges early (the
    last row is then ``nan``)."""
    rng = np.random.default_rng(zlib.crc32(run_id.encode()))
    top, rate, cost = rng.uniform(0.2, 0.95), rng.uniform(0.1, 1.0), rng.uniform(1.0, 5.0)
    diverge = int(rng.integers(2, epochs + 1)) if rng.random() < 0.15 else None
    rows = []
    for e in range(1, (diverge or epochs) + 1):
        value = math.nan if e == diverge else float(np.float32(top * (1 - math.exp(-rate * e))))
        rows.append(EpochRow(e, value, float(cost)))
    return rows, diverge is not None


@dataclass
class FakeDisk:
    """What was trained: each run's epochs, its stored status, and every trained ``(run_id, epoch)`` in order."""

    epochs: int
    rows: dict[str, list[EpochRow]] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    trained: list[tuple[str, int]] = field(default_factory=list)


@dataclass(eq=False)
class _Done:
    value: Any


class FakeWorld:
    """Implements :class:`metagen.tune.world.World` on a :class:`FakeDisk`.

    ``kill_at_step=k`` raises :class:`Killed` at the k-th ``step`` call (the ask is journaled, nothing
    trained); ``kill_at_wait=k`` at the k-th ``wait`` call (the steps in flight have trained, none is told).
    """

    def __init__(self, disk: FakeDisk, kill_at_step: int | None = None, kill_at_wait: int | None = None):
        self.disk, self.kill_at_step, self.kill_at_wait = disk, kill_at_step, kill_at_wait
        self.steps = self.waits = 0

    def step(self, spec: dict[str, Any]) -> _Done:
        self.steps += 1
        if self.steps == self.kill_at_step:
            raise Killed
        run_id, target, d = spec["run_id"], int(spec["target"]), self.disk
        have = d.rows.setdefault(run_id, [])
        if run_id not in d.status:
            full, diverges = synthetic_curve(run_id, d.epochs)
            for r in full[len(have) : target]:
                have.append(r)
                d.trained.append((run_id, r.epoch))
            if len(have) == len(full):
                d.status[run_id] = "diverged" if diverges else "ok"
        return _Done(StepOutcome(run_id, list(have), d.status.get(run_id)))

    def finish(self, spec: dict[str, Any], reason: str) -> _Done:
        run_id = spec["run_id"]
        if run_id not in self.disk.status and self.disk.rows.get(run_id):
            self.disk.status[run_id] = "timeout"
        return _Done(None)

    def wait(self, handles: Iterable[Any], timeout: float) -> list[Any]:
        self.waits += 1
        if self.waits == self.kill_at_wait:
            raise Killed
        return list(handles)[:1]

    def result(self, handle: _Done) -> Any:
        return handle.value

    def epochs(self, spec: dict[str, Any]) -> tuple[str | None, list[EpochRow]]:
        return self.disk.status.get(spec["run_id"]), list(self.disk.rows.get(spec["run_id"], []))

    def close(self) -> None:
        pass
