"""The paper's GP baseline: plain (black-box) GP-BO, Quick-Tune without meta-learning, cost and gray-box (QT -M -C -G).

Every step trains one new pipeline to the full budget (``max_epochs``, or to where its recorded curve ends). The
surrogate sees only what a black-box method sees: the encoded pipeline and its **final** accuracy (the last finite
value of its curve; a curve that ended early, truncated or diverged, counts with its last finite value). No budget,
no learning curve, no meta-features, no cost: the GP is fitted on ``(x, final)`` of the fully trained pipelines,
every untried candidate is predicted at the full budget, and the one with the largest expected improvement over the
best final accuracy so far is trained next. The first pipeline is drawn at random.

What it reuses: the BO loop and refit schedule of :class:`benchmark.methods.graybox_bo.GrayBoxBO` (the reference's:
1000 Adam steps from scratch for the first 10 fits, then 50), and Quick-Tune's deep-kernel GP trained from scratch
(:func:`benchmark.methods.quicktune.network_factory`; its budget input is constant and its curve input all zeros,
so the kernel acts on the pipeline alone). The paper's Fig. 3 ran Syne-Tune's GP-BO instead (a plain GP kernel on
the encoded configurations); docs/quicktune-deviations.md says what differs. Imports torch (registry lazy import).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from benchmark.methods.graybox_bo import GrayBoxBO, RefitSchedule, expected_improvement
from benchmark.methods.quicktune import network_factory, scratch_network
from benchmark.protocol import Ask, MetaContext, SearchView
from surrogates.data import Batch, make_batch
from surrogates.encoding import PipelineEncoder


class GPBO(GrayBoxBO):
    """Black-box BO on final accuracies (build it with :func:`make_gp`)."""

    def ask(self) -> Ask | None:
        """A random pipeline until one is fully trained (with several workers, each starts with one), then BO."""
        if self.final_values()[0].size:
            return super().ask()
        cand = self.available()
        cand = cand[self.allowed[cand]]
        return self.issue(int(self.rng.choice(cand)), self.view.max_epochs) if cand.size else None

    def final_values(self) -> tuple[np.ndarray, np.ndarray]:
        """Pipelines trained as far as they go, with a finite accuracy: their indices ``(m,)`` and last finite
        accuracies ``(m,)``."""
        done = self.finished | (self.highest >= self.view.max_epochs)
        finite = np.isfinite(self.curves)
        rows = np.flatnonzero(done & finite.any(axis=1))
        last = self.curves.shape[1] - 1 - np.argmax(finite[rows, ::-1], axis=1)
        return rows, self.curves[rows, last]

    def training_batch(self) -> Batch:
        """``(x, final accuracy)`` of every fully trained pipeline, at the full budget with an all-zero curve."""
        rows, y = self.final_values()
        return self._at_full_budget(rows, y)

    def candidate_batch(self, cand: np.ndarray) -> Batch:
        """The candidates at the full budget with all-zero curves."""
        return self._at_full_budget(cand)

    def scores(self, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """EI ``(c,)`` of the candidates' final accuracies over the best final accuracy so far; no cost."""
        train = self.training_batch()
        mean, std = self.model.predict(self.for_surrogate(train), self.for_surrogate(self.candidate_batch(cand)))
        best = float(train.y.max()) if len(train) else -np.inf
        return expected_improvement(mean, std, np.full(cand.size, best)), None

    def _at_full_budget(self, rows: np.ndarray, y: np.ndarray | None = None) -> Batch:
        n = rows.size
        return make_batch(
            self.x[rows], np.full(n, self.view.max_epochs), np.zeros((n, self.net_epochs)), self.net_epochs,
            self.meta, y=y,
        )  # fmt: skip


def make_gp(
    view: SearchView,
    seed: int,
    context: MetaContext | None = None,
    *,
    schedule: str | RefitSchedule | Mapping[str, Any] | None = None,
    **options: Any,
) -> GPBO:
    """The GP baseline on ``view`` (``context`` is unused: nothing is meta-learned).

    Args:
        view: the task's candidate set.
        seed: seed of the initial pipeline and of the surrogate's initialisation.
        schedule: refit schedule (``"reference"``, the default; a :class:`RefitSchedule` or a mapping of its fields).
    """
    encoder = PipelineEncoder.fit(view.features, view.feature_names)
    return GPBO(
        view, seed, model_factory=network_factory(encoder, view.max_epochs, scratch_network()), encoder=encoder,
        schedule=schedule, step=view.max_epochs, **options,
    )  # fmt: skip
