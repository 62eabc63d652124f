"""DEHB (Awad, Mallik & Hutter, IJCAI 2021) on the finite candidate set, driven through the ``dehb`` library's ask/tell.

The optional ``dehb`` package (extra ``dehb``; ``scripts/setup.sh`` installs it) does the optimisation: its
differential evolution inside Hyperband brackets proposes points of the unit hypercube and fidelities. This
module maps them onto the task, as the paper's Syne-Tune setup does (reference §6.2):

* **Space**: every encoded column of the candidates (:attr:`SearchView.features`) that varies over them is one
  dimension, ``uniform(min, max)`` over the candidates; DEHB's ``u`` in ``[0, 1]^d`` is the point
  ``min + u * (max - min)``.
* **Mapping**: the point goes to its nearest candidate, Euclidean after standardising each column over the
  candidates (Syne-Tune's KNN-1 surrogate: ``StandardScaler`` then ``KNeighborsRegressor(n_neighbors=1)``);
  ties go to the lowest index. Several points can map to one candidate.
* **Fidelities**: DEHB's geometric fidelities in ``[min_budget, max_epochs]`` (floats, e.g. 2.2, 6.7, 20) are
  rounded to whole epochs, as Hyperband's here (:func:`benchmark.methods.hyperband.hyperband_budgets`).
* **Fitness** (minimised): ``1 - accuracy`` at that epoch; a curve that ended earlier (truncated or diverged)
  counts with its last value (:func:`benchmark.methods.halving.value_at`), and diverged counts as
  :data:`DIVERGED_FITNESS` (worse than any accuracy). ``cost`` is the seconds the step was charged.
* **Freeze-thaw**: a candidate continues from its highest trained epoch. A proposal whose candidate is already
  known at that fidelity (trained that far, or its curve ended) is told to DEHB at once, without training and
  at no cost. The paper's simulator would train such a duplicate again from scratch; here it is a free lookup
  (docs/benchmark-protocol.md). :meth:`DEHB.stats` counts proposals, those answered this way and the
  distinct candidates proposed; the runner stores the counts with each replay.
* **Workers**: a proposal whose candidate another worker is training waits (``ask`` returns ``None``) until
  that step is told.

Determinism: the library seeds every generator it uses from the integer ``seed`` (``numpy.random.default_rng``;
no global RNG with ``cs=None``), so a seed gives the same proposals. The library writes a log file into its
``output_path`` and reconfigures ``loguru`` on construction; both go to a temporary folder that is removed at
once, and the library's ``loguru`` sinks are removed (nothing else here logs through ``loguru``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmark.methods.halving import check_halving, value_at
from benchmark.protocol import Ask, BaseOptimizer, EpochResult, MetaContext, SearchView
from benchmark.registry import DEHB_INSTALL

DIVERGED_FITNESS = 2.0
"""The fitness told for a diverged result (accuracies give ``1 - accuracy`` in ``[0, 1]``)."""

MAX_KNOWN_IN_ROW = 10_000
"""After this many proposals in a row that map to candidates already known at their fidelity, ``ask`` ends the
replay (DEHB keeps proposing what it has seen: with no new candidate reachable it would only spend time)."""


class DEHB(BaseOptimizer):
    """DEHB through the ``dehb`` library (see the module docstring).

    Args:
        view, seed, context: as every method factory (``context`` is unused).
        eta: Hyperband's reduction factor.
        min_budget: smallest fidelity in epochs (DEHB needs ``max_epochs > min_budget``).
        mutation_factor, crossover_prob, strategy, boundary_fix_type: the library's DE settings (its defaults).
    """

    def __init__(
        self,
        view: SearchView,
        seed: int,
        context: MetaContext | None = None,
        eta: float = 3,
        min_budget: int = 1,
        mutation_factor: float = 0.5,
        crossover_prob: float = 0.5,
        strategy: str = "rand1_bin",
        boundary_fix_type: str = "random",
        **options: Any,
    ):
        super().__init__(view, seed, **options)
        check_halving(view.max_epochs, int(min_budget), eta)
        if view.max_epochs <= int(min_budget):
            raise ValueError(
                f"DEHB needs max_epochs > min_budget (its fidelities span a range); task {view.name} has "
                f"max_epochs={view.max_epochs}, min_budget={min_budget}"
            )
        x = np.asarray(view.features, dtype=np.float64)
        varies = np.ptp(x, axis=0) > 0
        x = x[:, varies] if varies.any() else np.zeros((view.n, 1))
        self.low, self.span = x.min(axis=0), np.ptp(x, axis=0)
        self.mean, self.std = x.mean(axis=0), np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)
        self.points = (x - self.mean) / self.std  # the candidates, standardised (Syne-Tune's KNN input)
        self.library = _library_dehb(
            dimensions=x.shape[1],
            min_fidelity=int(min_budget),
            max_fidelity=view.max_epochs,
            eta=float(eta),
            seed=int(seed),
            mutation_factor=float(mutation_factor),
            crossover_prob=float(crossover_prob),
            strategy=str(strategy),
            boundary_fix_type=str(boundary_fix_type),
        )
        low, high = int(min_budget), view.max_epochs
        self.epoch_of = {f: int(min(max(round(float(f)), low), high)) for f in self.library.fidelities}
        self.jobs: dict[int, tuple[dict[str, Any], int]] = {}  # candidate -> (DEHB job, epoch) being trained
        self.held: tuple[dict[str, Any], int, int] | None = None  # a proposal waiting for a busy candidate
        self.proposed = np.zeros(view.n, dtype=bool)
        self.proposals = 0
        self.known = 0
        self.known_in_row = 0
        self.stuck = False

    # ---- protocol ---------------------------------------------------------------------------------------

    def ask(self) -> Ask | None:
        """The next step DEHB wants trained; proposals already known are told at once (see the module docstring)."""
        while True:
            if self.held is not None:
                job, c, epoch = self.held
            else:
                if self.available().size == 0:
                    return None  # nothing trainable now (or ever: then the replay ends)
                if self.known_in_row >= MAX_KNOWN_IN_ROW:
                    self.stuck = True
                    return None
                job = self.library.ask()
                c, epoch = self.nearest(np.asarray(job["config"], dtype=np.float64)), self.epoch_of[job["fidelity"]]
                self.proposals += 1
                self.proposed[c] = True
            if c in self.pending:
                self.held = (job, c, epoch)
                return None
            self.held = None
            if self.finished[c] or self.highest[c] >= epoch:
                self.known += 1
                self.known_in_row += 1
                self._tell_library(job, c, epoch, cost=0.0)
                continue
            self.known_in_row = 0
            self.jobs[c] = (job, epoch)
            return self.issue(c, epoch)

    def tell(self, ask: Ask, results: Sequence[EpochResult]) -> None:
        """Records the step and tells DEHB the candidate's fitness at the proposal's fidelity."""
        super().tell(ask, results)
        job, epoch = self.jobs.pop(ask.pipeline)
        self._tell_library(job, ask.pipeline, epoch, cost=float(sum(r.cost for r in results)))

    def stats(self) -> dict[str, int]:
        """Proposals of DEHB mapped onto candidates; those answered without training (candidate already known at
        the fidelity); distinct candidates proposed; 1 if the replay ended because DEHB kept proposing known ones."""
        return {
            "mapped_proposals": self.proposals,
            "known_proposals": self.known,
            "distinct_candidates": int(self.proposed.sum()),
            "stopped_stuck": int(self.stuck),
        }

    # ---- mapping ------------------------------------------------------------------------------------------

    def nearest(self, u: np.ndarray) -> int:
        """The candidate nearest to DEHB's point ``u`` ``(d,)`` in ``[0, 1]^d`` (standardised Euclidean)."""
        z = (self.low + u * self.span - self.mean) / self.std
        return int(np.argmin(((self.points - z) ** 2).sum(axis=1)))

    def _tell_library(self, job: dict[str, Any], c: int, epoch: int, cost: float) -> None:
        value = value_at(self, c, epoch)
        fitness = DIVERGED_FITNESS if np.isnan(value) else 1.0 - value
        self.library.tell(job, {"fitness": fitness, "cost": cost})


def _library_dehb(dimensions: int, seed: int, **settings: Any) -> Any:
    """A ``dehb.DEHB`` on ``[0, 1]^dimensions`` (no ConfigSpace), one synchronous worker, nothing left on disk."""
    try:
        import dehb
        from loguru import logger
    except ImportError as e:
        raise ImportError(f"method 'dehb' needs the optional package dehb ({e}); install it: {DEHB_INSTALL}") from e
    with tempfile.TemporaryDirectory(prefix="dehb-") as tmp:
        optimizer = dehb.DEHB(
            cs=None, f=None, dimensions=dimensions, n_workers=1, seed=seed, output_path=tmp, log_level="ERROR",
            save_freq="end", **settings,
        )  # fmt: skip
        logger.remove()  # the library's stdout sink and its log file in tmp
    return optimizer
