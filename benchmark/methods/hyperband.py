"""Hyperband (Li et al., JMLR 2018) on a finite candidate set with freeze-thaw continuation.

Budgets are whole epochs, geometric with ratio ``eta`` and ending at ``max_epochs``, like
hpbandster: ``round(max_epochs * eta**-k)`` for ``k = s_max .. 0`` with
``s_max = floor(log_eta(max_epochs / min_budget))`` (50 epochs, eta 3: 2, 6, 17, 50). Bracket ``s``
starts ``ceil((s_max + 1) / (s + 1) * eta**s)`` candidates at budget index ``s_max - s`` and keeps the
best ``1/eta`` at each successive-halving stage; brackets run ``s = s_max .. 0`` and repeat.

Finite-set rules: new candidates are drawn from those never drawn before; when none are left, from
any candidate that can still train and is in no running bracket (its known epochs are free
lookups). A promoted candidate continues from its checkpoint. A curve that ended before a stage's
budget (truncated or diverged) is ranked by its last value (diverged: worst) and needs no training.
With several workers, a bracket waiting for results lets the next bracket start (as hpbandster).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmark.methods.halving import check_halving, rank, value_at
from benchmark.protocol import Ask, BaseOptimizer, EpochResult, MetaContext, SearchView


def hyperband_budgets(max_epochs: int, min_budget: int = 1, eta: float = 3) -> tuple[int, ...]:
    """The rung budgets in epochs, increasing, ending at ``max_epochs`` (duplicates after rounding removed)."""
    check_halving(max_epochs, min_budget, eta)
    min_budget = min(min_budget, max_epochs)
    s_max = math.floor(math.log(max_epochs / min_budget) / math.log(eta) + 1e-9)
    raw = (max_epochs * eta ** (-k) for k in range(s_max, -1, -1))
    return tuple(sorted({max(min_budget, round(b)) for b in raw}))


def bracket_sizes(s: int, s_max: int, eta: float) -> tuple[int, ...]:
    """Candidates per stage of bracket ``s`` (``s + 1`` stages)."""
    n0 = math.ceil((s_max + 1) / (s + 1) * eta**s)
    return tuple(max(1, math.floor(n0 * eta ** (-i))) for i in range(s + 1))


@dataclass
class Bracket:
    """One successive-halving run of Hyperband.

    Attributes:
        s: bracket index (``s + 1`` stages).
        budgets: epochs per stage.
        sizes: candidates per stage.
        stage: current stage (``len(budgets)`` = done).
        members: candidates of the current stage, in the order they joined.
        queue: members not yet asked or resolved in this stage.
        results: value at the stage's budget per resolved member.
        pending: members being trained for this stage.
    """

    s: int
    budgets: tuple[int, ...]
    sizes: list[int]
    stage: int = 0
    members: list[int] = field(default_factory=list)
    queue: deque[int] = field(default_factory=deque)
    results: dict[int, float] = field(default_factory=dict)
    pending: set[int] = field(default_factory=set)

    @property
    def done(self) -> bool:
        """All stages finished."""
        return self.stage >= len(self.budgets)

    @property
    def budget(self) -> int:
        """Epochs of the current stage."""
        return self.budgets[self.stage]


class Hyperband(BaseOptimizer):
    """Hyperband with random sampling (see the module docstring for the finite-set rules).

    Args:
        view, seed, context: as every method factory (``context`` is unused).
        eta: reduction factor.
        min_budget: smallest budget in epochs (sets the number of brackets).
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
        self.budgets = hyperband_budgets(view.max_epochs, int(min_budget), self.eta)
        self.s_max = len(self.budgets) - 1
        self.brackets: list[Bracket] = []
        self.next_s = self.s_max
        self.owner: dict[int, Bracket] = {}
        self.owned = np.zeros(view.n, dtype=bool)
        self.drawn = np.zeros(view.n, dtype=bool)

    # ---- protocol ---------------------------------------------------------------------------------------

    def ask(self) -> Ask | None:
        """The next stage evaluation of the oldest bracket that has one (opening brackets as needed)."""
        while True:
            for b in self.brackets:
                a = self._ask_bracket(b)
                if a is not None:
                    return a
            self.brackets = [b for b in self.brackets if not b.done]
            if not self._open_bracket():
                return None

    def tell(self, ask: Ask, results: Sequence[EpochResult]) -> None:
        """Records the step and resolves the candidate's stage result."""
        super().tell(ask, results)
        c = ask.pipeline
        b = self.owner.get(c)
        if b is not None and c in b.pending:
            b.pending.discard(c)
            self._resolve(b, c)

    # ---- hooks for model-based variants ------------------------------------------------------------------

    def choose(self, pool: np.ndarray, bracket: Bracket) -> int:
        """Picks the next new candidate from ``pool`` (uniformly at random here)."""
        return int(pool[self.rng.integers(pool.size)])

    def observe(self, candidate: int, budget: int, value: float) -> None:
        """Called with every stage result (candidate, budget in epochs, value; nan = diverged)."""

    # ---- internals ----------------------------------------------------------------------------------------

    def _open_bracket(self) -> bool:
        if self._pool().size == 0:
            return False
        s = self.next_s
        self.next_s = self.s_max if s == 0 else s - 1
        self.brackets.append(Bracket(s, self.budgets[self.s_max - s :], list(bracket_sizes(s, self.s_max, self.eta))))
        return True

    def _pool(self) -> np.ndarray:
        """Candidates a new bracket may draw: never drawn ones first, else any free trainable one."""
        pool = self.available()
        pool = pool[~self.owned[pool]]
        fresh = pool[~self.drawn[pool]]
        return fresh if fresh.size else pool

    def _ask_bracket(self, b: Bracket) -> Ask | None:
        while not b.done:
            if b.queue:
                c = b.queue.popleft()
                if self.finished[c] or self.highest[c] >= b.budget:
                    self._resolve(b, c)
                    continue
                b.pending.add(c)
                return self.issue(c, b.budget)
            if b.stage == 0 and len(b.members) < b.sizes[0]:
                pool = self._pool()
                if pool.size == 0:
                    self._shrink(b)
                    continue
                c = self.choose(pool, b)
                self.drawn[c] = True
                self.owner[c] = b
                self.owned[c] = True
                b.members.append(c)
                b.queue.append(c)
                continue
            if b.pending:
                return None
            self._advance(b)
        return None

    def _resolve(self, b: Bracket, c: int) -> None:
        value = value_at(self, c, b.budget)
        b.results[c] = value
        self.observe(c, b.budget, value)

    def _release(self, c: int) -> None:
        self.owner.pop(c, None)
        self.owned[c] = False

    def _shrink(self, b: Bracket) -> None:
        n = len(b.members)
        if n == 0:
            b.stage = len(b.budgets)
            return
        b.sizes = [max(1, min(size, math.floor(n * self.eta ** (-i)))) for i, size in enumerate(b.sizes)]
        b.sizes[0] = n

    def _advance(self, b: Bracket) -> None:
        if b.stage + 1 >= len(b.budgets):
            b.stage = len(b.budgets)
            for c in b.members:
                self._release(c)
            return
        ranked = rank(b.members, [b.results[c] for c in b.members])
        keep = ranked[: b.sizes[b.stage + 1]]
        for c in ranked[len(keep) :]:
            self._release(c)
        b.stage += 1
        b.members = keep
        b.queue = deque(keep)
        b.results = {}
