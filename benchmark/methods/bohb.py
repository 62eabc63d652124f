"""BOHB (Falkner, Klein & Hutter, ICML 2018): Hyperband whose new candidates come from a TPE-style KDE model.

Settings are the paper's / hpbandster's defaults: ``top_n_percent=15``, ``min_points_in_model = d + 1``,
``random_fraction=1/3``, ``bandwidth_factor=3``, ``num_samples=64``, ``min_bandwidth=1e-3``, with
Hyperband's ``eta=3`` and whole-epoch budgets (:mod:`benchmark.methods.hyperband`).

Model (hpbandster's ``new_result``): per budget, the stage results seen at that budget, best first
(diverged = worst); ``n_good = max(d + 1, 15 % of them)`` form the good density ``l``, the next
``n_bad = max(d + 1, 85 % of them)`` the bad density ``g``; a model exists once both hold more than ``d``
points. New candidates use the model of the largest budget that has one.

Proposal on the finite candidate set (``acquisition``):

* ``"sample"`` (default, closest to BOHB): draw ``num_samples`` points from ``l`` with bandwidths
  widened by ``bandwidth_factor``; map each to its nearest drawable candidate (mixed distance of
  :mod:`benchmark.methods.space`); among those, take the one maximising ``l(x) / g(x)``.
* ``"all"``: score every drawable candidate by ``l(x) / g(x)`` and take the best.

With probability ``random_fraction`` (and while no model exists) a candidate is drawn uniformly. :meth:`BOHB.stats`
counts the proposals of each kind; the runner stores them with the replay's results, and the summary tables
report them (on small stores the model may never exist, and BOHB is then Hyperband with another random stream).
``d`` counts the hyperparameters that vary over the candidate set (the model is one categorical).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmark.methods.hyperband import Bracket, Hyperband
from benchmark.methods.kde import MixedKDE, log_ratio
from benchmark.methods.space import mixed_space
from benchmark.protocol import MetaContext, SearchView


class BOHB(Hyperband):
    """Hyperband + per-budget good/bad KDEs (see the module docstring)."""

    def __init__(
        self,
        view: SearchView,
        seed: int,
        context: MetaContext | None = None,
        eta: float = 3,
        min_budget: int = 1,
        top_n_percent: int = 15,
        min_points_in_model: int | None = None,
        random_fraction: float = 1 / 3,
        bandwidth_factor: float = 3.0,
        num_samples: int = 64,
        min_bandwidth: float = 1e-3,
        acquisition: str = "sample",
        **options: Any,
    ):
        super().__init__(view, seed, context, eta=eta, min_budget=min_budget, **options)
        if acquisition not in ("sample", "all"):
            raise ValueError(f"BOHB acquisition must be 'sample' or 'all', not {acquisition!r}")
        self.space = mixed_space(view)
        d = self.space.d
        self.min_points = d + 1 if min_points_in_model is None else int(min_points_in_model)
        self.top_n_percent = int(top_n_percent)
        self.random_fraction = float(random_fraction)
        self.bandwidth_factor = float(bandwidth_factor)
        self.num_samples = int(num_samples)
        self.min_bandwidth = float(min_bandwidth)
        self.acquisition = acquisition
        self.results: dict[int, dict[int, float]] = {}
        self.models: dict[int, tuple[MixedKDE, MixedKDE]] = {}
        self.stale: set[int] = set()
        self.model_proposals = 0
        self.random_proposals = 0

    def observe(self, candidate: int, budget: int, value: float) -> None:
        """Adds a stage result to the budget's data (the latest value per candidate counts)."""
        self.results.setdefault(budget, {})[candidate] = value
        self.stale.add(budget)

    def choose(self, pool: np.ndarray, bracket: Bracket) -> int:
        """A candidate from ``pool``: at random with probability ``random_fraction``, else by the model."""
        random_draw = self.rng.random() < self.random_fraction
        model = self._model()
        if random_draw or model is None or self.space.d == 0:
            self.random_proposals += 1
            return int(pool[self.rng.integers(pool.size)])
        self.model_proposals += 1
        good, bad = model
        if self.acquisition == "all":
            scores = log_ratio(good, bad, self.space.points[pool])
            return int(pool[int(np.argmax(scores))])
        samples = good.sample(self.rng, self.num_samples, self.bandwidth_factor)
        nearest = pool[np.argmin(self.space.distance(samples, pool), axis=1)]
        options = np.unique(nearest)
        scores = log_ratio(good, bad, self.space.points[options])
        return int(options[int(np.argmax(scores))])

    def stats(self) -> dict[str, int]:
        """Proposals (:meth:`choose` calls) so far: by the KDE model, at random (``random_fraction`` or no model
        yet), all."""
        return {
            "model_proposals": self.model_proposals,
            "random_proposals": self.random_proposals,
            "proposals": self.model_proposals + self.random_proposals,
        }

    def _model(self) -> tuple[MixedKDE, MixedKDE] | None:
        for budget in sorted(self.stale):
            fitted = self._fit(budget)
            if fitted is not None:
                self.models[budget] = fitted
        self.stale.clear()
        return self.models[max(self.models)] if self.models else None

    def _fit(self, budget: int) -> tuple[MixedKDE, MixedKDE] | None:
        data = self.results.get(budget, {})
        n, d = len(data), self.space.d
        if n < self.min_points or d == 0:
            return None
        cands = np.fromiter(data.keys(), dtype=np.int64, count=n)
        values = np.fromiter(data.values(), dtype=np.float64, count=n)
        order = np.argsort(np.where(np.isnan(values), np.inf, -values), kind="stable")
        n_good = max(self.min_points, (self.top_n_percent * n) // 100)
        n_bad = max(self.min_points, ((100 - self.top_n_percent) * n) // 100)
        good, bad = cands[order[:n_good]], cands[order[n_good : n_good + n_bad]]
        if good.size <= d or bad.size <= d:
            return None
        pts, cont, levels = self.space.points, self.space.continuous, self.space.n_levels
        return (
            MixedKDE.fit(pts[good], cont, levels, self.min_bandwidth),
            MixedKDE.fit(pts[bad], cont, levels, self.min_bandwidth),
        )
