"""Random search: a uniformly random untried candidate per step, trained to its full recorded budget."""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmark.protocol import Ask, BaseOptimizer, MetaContext, SearchView


class RandomSearch(BaseOptimizer):
    """Each step trains a new uniformly drawn candidate to ``max_epochs`` (or the end of its curve).

    Candidates are drawn without replacement; it stops when every candidate has been tried.
    """

    def __init__(self, view: SearchView, seed: int, context: MetaContext | None = None, **options: Any):
        super().__init__(view, seed, **options)
        self.order = self.rng.permutation(view.n)
        self.started = np.zeros(view.n, dtype=bool)
        self.next = 0

    def ask(self) -> Ask | None:
        """The next untried candidate at ``max_epochs``; ``None`` once all were tried."""
        while self.next < self.view.n:
            i = int(self.order[self.next])
            self.next += 1
            if not self.started[i]:
                self.started[i] = True
                return self.issue(i, self.view.max_epochs)
        return None
