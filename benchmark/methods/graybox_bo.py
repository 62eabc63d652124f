"""Gray-box Bayesian optimisation with a deep-kernel GP over a finite candidate set (DyHPO, Quick-Tune).

One loop for both methods (reference §5.2, §7): an initial random pipeline at the first budget;
then, after each observation, the surrogate is (re)fitted on every observed (pipeline, epoch) on the
refit schedule, every candidate is predicted at its next budget ``min(highest + step, E)`` with its
observed curve (unseen ones at budget ``step`` with an all-zero curve), and the candidate with the
largest multi-fidelity expected improvement (optionally divided by its predicted cost) is asked for.
Imports torch: only the registry's lazy import reaches this module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from scipy.stats import norm

from benchmark.protocol import Ask, BaseOptimizer, EpochResult, SearchView
from surrogates.cost import CostPredictor
from surrogates.data import Batch, make_batch
from surrogates.encoding import PipelineEncoder
from surrogates.gp import DeepKernelGP

COST_FLOOR = 1e-4
"""Predicted costs below this (seconds) are raised to it before dividing EI by them."""


DTYPES = {"float32": torch.float32, "float64": torch.float64}
"""Precisions of the surrogate (:attr:`RefitSchedule.dtype`)."""


@dataclass(frozen=True)
class RefitSchedule:
    """When and how long the surrogate is trained during BO (defaults: the reference code's, §4.1, §7).

    Attributes:
        initial_steps: for the first this many fits, the surrogate is reset (to its initial or
            meta-trained weights) and trained for ``initial_epochs``. Only fits that train count:
            a fit skipped because a single observation cannot train BatchNorm does not.
        initial_epochs: full-batch Adam steps of a reset fit (also used on a restart).
        refine_epochs: Adam steps of every later fit, continuing from the current weights.
        patience: observations without a new best accuracy after which the next fit is a reset
            (``None`` = ``int(1.2 * E)`` as in the reference).
        restart_mse: after a fit, the next fit is a reset when the surrogate's training MSE (of the
            GP's prior mean, as DyHPO computes it) exceeds this. ``None`` (default) = never, as in the code
            behind both papers, where the rule (0.15) is commented out (docs/quicktune-deviations.md).
        lr: Adam learning rate.
        dtype: ``"float32"`` (the reference code's) or ``"float64"``: the surrogate's parameters, its inputs
            and its fits. Float64 lockstep replays equal replays alone with short fits (the test fixture),
            but not at the reference schedule: 1,000-step fits still amplify rounding (benchmarks/RESULTS.md).
    """

    initial_steps: int = 10
    initial_epochs: int = 1000
    refine_epochs: int = 50
    patience: int | None = None
    restart_mse: float | None = None
    lr: float = 1e-3
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"refit schedule dtype {self.dtype!r} must be one of {sorted(DTYPES)}")

    def label(self) -> str:
        """``reference`` for the reference schedule, else the fields that differ from it (for output)."""
        diff = [f"{f.name}={getattr(self, f.name)}" for f in fields(self) if getattr(self, f.name) != f.default]
        return "reference" if not diff else "custom(" + ", ".join(diff) + ")"


SCHEDULES: dict[str, RefitSchedule] = {"reference": RefitSchedule()}
"""Named refit schedules: only the reference code's. The cheaper ``default`` (300/10) and ``fast`` (100/5)
schedules were removed: they changed the ranking of the methods (docs/quicktune-deviations.md)."""


def resolve_schedule(schedule: str | RefitSchedule | Mapping[str, Any] | None) -> RefitSchedule:
    """A :class:`RefitSchedule` from a preset name, a mapping of its fields, or an instance (``None``: reference)."""
    if schedule is None:
        return SCHEDULES["reference"]
    if isinstance(schedule, RefitSchedule):
        return schedule
    if isinstance(schedule, str):
        if schedule not in SCHEDULES:
            raise ValueError(
                f"unknown refit schedule {schedule!r}; choose one of {sorted(SCHEDULES)} or give a mapping of "
                f"RefitSchedule fields (the cheaper 'default' and 'fast' schedules were removed)"
            )
        return SCHEDULES[schedule]
    names = {f.name for f in fields(RefitSchedule)}
    unknown = sorted(set(schedule) - names)
    if unknown:
        raise ValueError(f"unknown refit schedule fields {unknown}; RefitSchedule has {sorted(names)}")
    return RefitSchedule(**dict(schedule))


def expand_schedule(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with ``schedule`` spelled out as every :class:`RefitSchedule` field (how ``run.json`` records a
    GP method's options): a run resumed after the schedule's defaults changed is then refused, not mixed."""
    return {**options, "schedule": asdict(resolve_schedule(options.get("schedule")))}


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: np.ndarray) -> np.ndarray:
    """EI of maximisation, ``(mu - y*) Phi(z) + sigma phi(z)``, ``z = (mu - y*) / sigma``; 0 where sigma = 0.

    Shapes: all ``(n,)``.
    """
    mean, std, best = (np.asarray(a, dtype=np.float64) for a in (mean, std, best))
    out = np.zeros_like(mean)
    ok = std > 0
    z = (mean[ok] - best[ok]) / std[ok]
    out[ok] = (mean[ok] - best[ok]) * norm.cdf(z) + std[ok] * norm.pdf(z)
    return out


def select(ei: np.ndarray, cost: np.ndarray | None = None) -> int:
    """Index of the best score ``EI / max(cost, 1e-4)`` (``EI`` without costs); ties go to the lowest index."""
    score = ei if cost is None else ei / np.maximum(np.asarray(cost, dtype=np.float64), COST_FLOOR)
    return int(np.argmax(score))


def fidelity_incumbents(curves: np.ndarray) -> np.ndarray:
    """``(E,)`` y*_b: best accuracy observed at exactly epoch ``b``, else the best observed at any epoch.

    ``curves`` ``(n, E)`` holds observed accuracies, ``nan`` where unobserved; ``-inf`` before any.
    """
    finite = np.isfinite(curves)
    overall = curves[finite].max() if finite.any() else -np.inf
    exact = np.where(finite, curves, -np.inf).max(axis=0)
    return np.where(finite.any(axis=0), exact, overall)


class GrayBoxBO(BaseOptimizer):
    """Freeze-thaw BO with a deep-kernel GP on a :class:`SearchView`.

    Args:
        view: the task's candidate set.
        seed: seed of the initial design and of the surrogate's initialisation/dropout.
        model_factory: ``generator -> DeepKernelGP``; called to (re)build the surrogate from scratch.
        encoder: scales the view's pipelines (``(n, d)`` -> ``(n, D)``).
        meta: ``(4,)`` scaled meta-features of the task.
        initial_state: weights a reset fit starts from (e.g. meta-trained); ``None`` = a fresh model.
        cost_model: predicts per-epoch seconds; ``None`` = plain EI.
        schedule: refit schedule (preset name, mapping or :class:`RefitSchedule`).
        step: fidelity step in epochs (1 = gray-box; ``E`` = full evaluations).
        allowed: ``(n,)`` bool, candidates the method may ask for (hub restriction); ``None`` = all.
        net_epochs: curve width and budget scale ``E`` of the surrogate (default: the view's
            ``max_epochs``; a meta-trained net keeps its version's width).
    """

    def __init__(
        self,
        view: SearchView,
        seed: int,
        *,
        model_factory: Callable[[torch.Generator], DeepKernelGP],
        encoder: PipelineEncoder,
        meta: np.ndarray | None = None,
        initial_state: dict[str, Any] | None = None,
        cost_model: CostPredictor | None = None,
        schedule: str | RefitSchedule | Mapping[str, Any] | None = None,
        step: int = 1,
        allowed: np.ndarray | None = None,
        net_epochs: int | None = None,
        **options: Any,
    ):
        super().__init__(view, seed, **options)
        if not 1 <= step <= view.max_epochs:
            raise ValueError(f"fidelity step {step} must lie in [1, {view.max_epochs}]")
        self.net_epochs = int(net_epochs or view.max_epochs)
        if self.net_epochs < view.max_epochs:
            raise ValueError(f"the surrogate covers {self.net_epochs} epochs but the task has {view.max_epochs}")
        self.schedule = resolve_schedule(schedule)
        self.step = int(step)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.model_factory = model_factory
        self.initial_state = initial_state
        self.model = self._fresh_model()
        self.cost_model = cost_model
        self.x = encoder.transform(view.features, view.feature_names)
        self.meta = np.zeros(4, dtype=np.float32) if meta is None else np.asarray(meta, dtype=np.float32)
        self.allowed = np.ones(view.n, dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
        if not self.allowed.any():
            raise ValueError("no candidate is allowed")
        self.patience = self.schedule.patience or int(1.2 * view.max_epochs)
        self.fits = 0
        self.restart = True
        self.stale = False  # observations since the last fit
        self.no_improvement = 0
        self.best = -np.inf
        self.fit_epochs: list[int] = []  # epochs of each fit (for benchmarks and tests)
        self.mse_restarts = 0  # resets triggered by the training-MSE rule

    # ---- protocol ---------------------------------------------------------------------------

    def ask(self) -> Ask | None:
        """The next (pipeline, epoch) to train, or ``None`` when no candidate is left."""
        cand = self.available()
        cand = cand[self.allowed[cand]]
        if cand.size == 0:
            return None
        if not np.isfinite(self.curves).any():  # initial design: random until something finite is observed
            i = int(self.rng.choice(cand))
            return self.issue(i, self._next_budget(np.array([i]))[0])
        if self.stale:
            self._fit()
        i = int(cand[self._choose(cand)])
        return self.issue(i, int(self._next_budget(np.array([i]))[0]))

    def tell(self, ask: Ask, results: Sequence[EpochResult]) -> None:
        """Records the step, counts observations without improvement (reference restart rule)."""
        super().tell(ask, results)
        values = [r.value for r in results if np.isfinite(r.value)]
        if values and max(values) > self.best:
            self.best, self.no_improvement = float(max(values)), 0
        else:
            self.no_improvement += 1
            if self.no_improvement == self.patience:
                self.restart = True
        self.stale = True

    # ---- surrogate --------------------------------------------------------------------------

    def _fresh_model(self) -> DeepKernelGP:
        model = self.model_factory(self.generator).to(DTYPES[self.schedule.dtype])
        if self.initial_state is not None:
            model.load_state_dict(self.initial_state)  # copied into the model's dtype
        return model

    def for_surrogate(self, batch: Batch) -> Batch:
        """``batch`` in the surrogate's precision (:attr:`RefitSchedule.dtype`)."""
        return batch.to(DTYPES[self.schedule.dtype])

    def training_batch(self) -> Batch:
        """Every observed finite (pipeline, epoch) as a batch: inputs ``(N, ...)``, targets ``(N,)``."""
        rows, cols = np.nonzero(np.isfinite(self.curves))
        return make_batch(
            self.x[rows], cols + 1, self.curves[rows], self.net_epochs, self.meta, y=self.curves[rows, cols]
        )

    def _fit(self) -> None:
        batch = self.for_surrogate(self.training_batch())
        self.stale = False
        if len(batch) < 2:  # one observation cannot train BatchNorm: skipped, and not counted as a fit
            return
        self.fits += 1
        if self.restart:
            self.model = self._fresh_model()
            epochs = self.schedule.initial_epochs
            if self.fits >= self.schedule.initial_steps:
                self.restart = False
        else:
            epochs = self.schedule.refine_epochs
        self.model.fit(batch, epochs, lr=self.schedule.lr)
        self.fit_epochs.append(epochs)
        limit = self.schedule.restart_mse
        if limit is not None and not self.restart and self.model.training_mse(batch) > limit:
            self.restart = True  # DyHPO: "metric too high, time to restart, or we risk divergence"
            self.mse_restarts += 1

    def _next_budget(self, idx: np.ndarray) -> np.ndarray:
        return np.minimum(self.highest[idx] + self.step, self.view.max_epochs)

    def candidate_batch(self, cand: np.ndarray) -> Batch:
        """Candidates ``(c,)`` at their next budget with their observed curves (zeros if unseen)."""
        budgets = self._next_budget(cand)
        return make_batch(self.x[cand], budgets, self.curves[cand], self.net_epochs, self.meta)

    def scores(self, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """EI ``(c,)`` of the candidates against y*_b at their next budget, and their predicted cost."""
        query = self.candidate_batch(cand)
        mean, std = self.model.predict(self.for_surrogate(self.training_batch()), self.for_surrogate(query))
        budgets = self._next_budget(cand)
        ei = expected_improvement(mean, std, fidelity_incumbents(self.curves)[budgets - 1])
        if self.cost_model is None:
            return ei, None
        per_epoch = self.cost_model.predict(query)
        return ei, per_epoch * (budgets - self.highest[cand])

    def _choose(self, cand: np.ndarray) -> int:
        ei, cost = self.scores(cand)
        return select(ei, cost)
