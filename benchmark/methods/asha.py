"""ASHA (Li et al., MLSys 2020): asynchronous successive halving, promotion type, freeze-thaw continuation.

Rungs are ``min_budget * eta**k`` epochs below ``max_epochs``, plus ``max_epochs`` (syne-tune's
rung levels; 50 epochs, eta 3: 1, 3, 9, 27, 50). Whenever a worker is free: scan the rungs from
the second-highest down; in rung ``k`` the best ``floor(|rung k| / eta)`` results may be promoted,
and the best of them not yet promoted continues from its checkpoint to rung ``k + 1``. With no
promotion possible, a new uniformly drawn candidate starts at the lowest rung. A candidate whose
curve ended before a rung (truncated or diverged) enters it with its last value without training
(diverged ranks last). It stops when no candidate is left to start and nothing can be promoted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmark.methods.halving import check_halving, rank, value_at
from benchmark.protocol import Ask, BaseOptimizer, EpochResult, MetaContext, SearchView


def asha_rungs(max_epochs: int, min_budget: int = 1, eta: float = 3) -> tuple[int, ...]:
    """Rung levels in epochs, increasing, the last one ``max_epochs``."""
    check_halving(max_epochs, min_budget, eta)
    rungs: list[int] = []
    r = float(min(min_budget, max_epochs))
    while r < max_epochs:
        if not rungs or round(r) > rungs[-1]:
            rungs.append(round(r))
        r *= eta
    return (*rungs, max_epochs)


class ASHA(BaseOptimizer):
    """Asynchronous successive halving with promotions (see the module docstring).

    Args:
        view, seed, context: as every method factory (``context`` is unused).
        eta: reduction factor.
        min_budget: lowest rung in epochs.
    """

    def __init__(
        self,
        view: SearchView,
        seed: int,
        context: MetaContext | None = None,
        eta: float = 3,
        min_budget: int = 1,
        **options: Any,
    ):
        super().__init__(view, seed, **options)
        self.eta = float(eta)
        self.rungs = asha_rungs(view.max_epochs, int(min_budget), self.eta)
        self.results: list[dict[int, float]] = [{} for _ in self.rungs]
        self.promoted: list[set[int]] = [set() for _ in self.rungs]
        self.target: dict[int, int] = {}
        self.order = self.rng.permutation(view.n)
        self.next = 0

    def ask(self) -> Ask | None:
        """A promotion if one is due, else a new candidate at the lowest rung; ``None`` when neither."""
        while (promo := self._promotable()) is not None:
            c, k = promo
            self.promoted[k].add(c)
            budget = self.rungs[k + 1]
            if self.finished[c] or self.highest[c] >= budget:
                self.results[k + 1][c] = value_at(self, c, budget)
                continue
            self.target[c] = k + 1
            return self.issue(c, budget)
        while self.next < self.view.n:
            c = int(self.order[self.next])
            self.next += 1
            if self.highest[c] == 0 and c not in self.pending:
                self.target[c] = 0
                return self.issue(c, self.rungs[0])
        return None

    def tell(self, ask: Ask, results: Sequence[EpochResult]) -> None:
        """Records the step and enters the candidate into the rung it was trained for."""
        super().tell(ask, results)
        k = self.target.pop(ask.pipeline, None)
        if k is not None:
            self.results[k][ask.pipeline] = value_at(self, ask.pipeline, self.rungs[k])

    def _promotable(self) -> tuple[int, int] | None:
        for k in range(len(self.rungs) - 2, -1, -1):
            res = self.results[k]
            n_top = int(len(res) // self.eta)
            if n_top == 0:
                continue
            cands = list(res)
            for c in rank(cands, [res[c] for c in cands])[:n_top]:
                if c not in self.promoted[k] and c not in self.pending:
                    return c, k
        return None
