"""The simulated clock of a replay and the policy that charges optimizer overhead to it.

Simulated time advances by the recorded ``train_time + eval_time`` of every epoch trained plus the
optimizer's overhead under an explicit policy:

* ``"none"`` (default): optimizer time is free. Results depend only on the store, the method and
  the seed, so they are identical bit for bit on any machine and under any load.
* ``"measured"``: the wall time of every ``ask`` / ``on_epoch`` / ``tell`` call, measured with the
  clock's injected ``timer``. Faithful to the Quick-Tune evaluation (slow surrogates lose simulated
  time) but not reproducible: it depends on the host and on what else runs on it.
* a number ``s``: a fixed ``s`` seconds per step (one ask/tell cycle). Deterministic, and charges
  a model-based method for the decisions it makes.

Imports neither torch nor timm.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

OverheadSpec = Literal["none", "measured"] | float | int | str
"""What users pass: ``"none"``, ``"measured"``, a number of seconds per step, or its string form."""


@dataclass(frozen=True)
class OverheadPolicy:
    """How optimizer time is charged to the simulated clock.

    Attributes:
        kind: ``none`` | ``measured`` | ``fixed``.
        seconds: seconds per step for ``fixed`` (0 otherwise).
    """

    kind: Literal["none", "measured", "fixed"]
    seconds: float = 0.0

    @classmethod
    def parse(cls, spec: OverheadSpec | OverheadPolicy) -> OverheadPolicy:
        """The policy named by ``spec``; a clear ``ValueError`` for anything else."""
        if isinstance(spec, OverheadPolicy):
            return spec
        if isinstance(spec, bool):
            raise ValueError(f"overhead must be 'none', 'measured' or seconds per step, not {spec!r}")
        if isinstance(spec, int | float):
            seconds = float(spec)
        else:
            text = str(spec).strip().lower()
            if text in ("none", "measured"):
                return cls(text)  # type: ignore[arg-type]
            try:
                seconds = float(text)
            except ValueError:
                raise ValueError(
                    f"overhead must be 'none', 'measured' or a number of seconds per step, not {spec!r}"
                ) from None
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"a fixed overhead must be a finite number of seconds >= 0, not {spec!r}")
        return cls("fixed", seconds)

    @property
    def label(self) -> str:
        """The policy as users write it (``none``, ``measured`` or the seconds per step)."""
        return repr(self.seconds) if self.kind == "fixed" else self.kind

    def step_cost(self, measured_s: float) -> float:
        """Seconds charged for one step whose optimizer calls took ``measured_s`` wall seconds."""
        if self.kind == "measured":
            return max(0.0, measured_s)
        return self.seconds if self.kind == "fixed" else 0.0


@dataclass
class SimulatedClock:
    """Simulated seconds since the start of a replay, plus the timer that measures real overhead.

    Attributes:
        now: current simulated time in seconds.
        timer: real-time source for the ``measured`` policy (inject a fake one in tests).
    """

    now: float = 0.0
    timer: Callable[[], float] = field(default=time.perf_counter)

    def advance_to(self, t: float) -> float:
        """Moves the clock forward to ``t`` (never backwards); returns the new time."""
        if t > self.now:
            self.now = t
        return self.now
