"""No-HPO baselines: one fixed model with default hyperparameters, chosen by hand or by meta-training data, and
the frozen-backbone baselines of Exp. 5 (linear probing, LoRA) on the runs of a store that holds them.

"Default hyperparameters" are :data:`DEFAULT_HYPERPARAMETERS`: the defaults of timm's ``train.py``
(which Quick-Tune's finetuning script forks) snapped to the v1 grid, with no finetuning tricks
switched on (declared in ``conf/search_spaces/v1.yaml``). A task holds only the pipelines that were run (a sweep
with ``include_defaults=true`` runs each model's default pipeline), so the baseline trains the candidate
of the wanted model **closest** to those defaults (mixed distance of :mod:`benchmark.methods.space`:
one per mismatched categorical hyperparameter plus the ordinal distance of numeric ones; ties go to
the lowest candidate index).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from benchmark.methods.space import encode_hyperparameters_row, mixed_space
from benchmark.protocol import Ask, BaseOptimizer, MetaContext, SearchView
from benchmark.task import load_tasks, store_signature
from metagen.search_space import SearchSpace


def _v1_defaults() -> dict[str, Any]:
    """Every hyperparameter of the v1 space: its declared default, ``None`` where the defaults leave it inactive."""
    space = SearchSpace.load("v1")
    defaults = space.default_pipeline(space.models[0].name)
    return {hp.name: defaults.get(hp.name) for hp in space.hyperparameters}


DEFAULT_HYPERPARAMETERS: dict[str, Any] = _v1_defaults()
"""timm ``train.py`` defaults on the v1 grid, as ``conf/search_spaces/v1.yaml`` declares them (``default:``): SGD
(Nesterov, momentum 0.9), lr 0.05 -> 0.01 (grid max), weight decay 2e-5 -> 1e-5, cosine schedule, 5 warm-up
epochs from 1e-5, label smoothing 0.1, batch 128, no mixing, no augmentation policy, full finetuning, no
regularisers. A sweep with ``include_defaults=true`` trains each model's default pipeline of its own space (the
bundled store's hub6: batch 64, 2 warm-up epochs of 20), which is then the closest candidate."""

DEFAULT_MODEL = "xcit_small_12_p8_384_dist"
"""The paper's best single model with default HPs on micro and extended (Table 2: XCiT)."""


def resolve_model(view: SearchView, model: str) -> str:
    """The view's model name for ``model`` (a timm name, a name without its tag, or a paper alias)."""
    present = sorted(set(view.models))
    if model in present:
        return model
    try:
        name = SearchSpace.load("v1").model(model).name
    except KeyError:
        name = model
    matches = [m for m in present if m == name or m.split(".")[0] == model.split(".")[0]]
    if not matches:
        raise ValueError(f"model '{model}' has no candidate in task {view.name}; models there: {present}")
    return matches[0]


def default_candidate(
    view: SearchView, model: str | None, defaults: Mapping[str, Any] | None = None, rows: np.ndarray | None = None
) -> int:
    """Index of the candidate closest to the default hyperparameters among those of ``model`` (``None``: of every
    model) and of ``rows`` (``None``: all candidates)."""
    hps = {**DEFAULT_HYPERPARAMETERS, **(defaults or {})}
    candidates = np.arange(view.n) if rows is None else np.asarray(rows, dtype=np.int64)
    if model is not None:
        hps["model"] = name = resolve_model(view, model)
        candidates = candidates[np.asarray(view.models)[candidates] == name]
    if candidates.size == 0:
        raise ValueError(f"no candidate of task {view.name} is left to choose from (model {model!r})")
    space = mixed_space(view, exclude=("model",))
    target = space.encode(encode_hyperparameters_row(hps, view.feature_names))
    return int(candidates[int(np.argmin(space.distance(target, candidates)))])


class OneCandidate(BaseOptimizer):
    """A method without HPO: trains ``self.candidate`` (set by the subclass) to ``max_epochs`` once; then stops."""

    candidate: int
    asked: bool = False

    def ask(self) -> Ask | None:
        """The chosen candidate at ``max_epochs`` once; ``None`` afterwards."""
        if self.asked:
            return None
        self.asked = True
        return self.issue(self.candidate, self.view.max_epochs)


class DefaultModel(OneCandidate):
    """Trains one candidate, ``model`` with default hyperparameters, to ``max_epochs``; then stops.

    Args:
        view, seed, context: as every method factory (``context`` is unused).
        model: timm name or paper alias of the model.
        defaults: overrides of :data:`DEFAULT_HYPERPARAMETERS`.
    """

    def __init__(
        self,
        view: SearchView,
        seed: int,
        context: MetaContext | None = None,
        model: str = DEFAULT_MODEL,
        defaults: Mapping[str, Any] | None = None,
        **options: Any,
    ):
        super().__init__(view, seed, **options)
        self.model = resolve_model(view, model)
        self.candidate = default_candidate(view, self.model, defaults)


class BestOnAverage(DefaultModel):
    """:class:`DefaultModel` with the model whose default-HP pipeline has the lowest mean normalised
    regret (final epoch; diverged = 1) over the meta-training datasets of ``context``.

    Only models that have a candidate in the task compete; a model counts on the training datasets
    where it has a candidate. Ties go to the model that comes first in sorted order.
    """

    def __init__(
        self,
        view: SearchView,
        seed: int,
        context: MetaContext | None = None,
        defaults: Mapping[str, Any] | None = None,
        **options: Any,
    ):
        if context is None or not context.train_datasets:
            raise ValueError("best_on_average needs a MetaContext with meta-training datasets (make_context)")
        scores = model_scores(context.store, context.version, tuple(context.train_datasets), defaults)
        candidates = {m: s for m, s in scores.items() if m in set(view.models)}
        if not candidates:
            raise ValueError(
                f"no model of task {view.name} has a candidate on the meta-training datasets {context.train_datasets}"
            )
        self.scores = candidates
        best = min(sorted(candidates), key=lambda m: candidates[m])
        super().__init__(view, seed, context, model=best, defaults=defaults, **options)


def model_scores(
    store: str, version: str, datasets: tuple[str, ...], defaults: Mapping[str, Any] | None = None
) -> dict[str, float]:
    """Mean normalised regret (final epoch of the default-HP candidate) of every model over ``datasets``."""
    root, signature = store_signature(store)
    return dict(_model_scores(root, signature, version, datasets, tuple(sorted((defaults or {}).items()))))


@lru_cache(maxsize=64)
def _model_scores(
    root: str, signature: tuple, version: str, datasets: tuple[str, ...], defaults: tuple[tuple[str, Any], ...]
) -> tuple[tuple[str, float], ...]:
    per_model: dict[str, list[float]] = {}
    for task in load_tasks(root, version, list(datasets)):
        for model in sorted(set(task.view.models)):
            i = default_candidate(task.view, model, dict(defaults))
            final = task.values[i, int(task.n_epochs[i]) - 1]
            per_model.setdefault(model, []).append(float(task.regret(final)))
    return tuple((m, float(np.mean(v))) for m, v in sorted(per_model.items()))


STRATEGIES: dict[str, dict[str, Any]] = {
    "linear_probe": {"pct_to_freeze": 1.0, "linear_probing": False, "lora_rank": 0},
    "lora": {"pct_to_freeze": 1.0, "linear_probing": False, "lora_rank": 8, "lora_alpha": 16, "lora_targets": "qkv"},
}
"""The Exp. 5 baselines: the backbone frozen (``pct_to_freeze`` 1, no LP-FT) and only the head trained
(``linear_probe``), or the head and LoRA adapters (``lora``, ``lora_rank`` > 0 in ``extra_hps``; rank 8 with alpha 16
on the attention qkv is the default it is closest to). The other defaults are :data:`DEFAULT_HYPERPARAMETERS`."""


def strategy_rows(view: SearchView, strategy: str) -> np.ndarray:
    """Indices of the candidates that run ``strategy`` (frozen backbone; LoRA adapters or none)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; known: {sorted(STRATEGIES)}")
    names = list(view.feature_names)

    def column(name: str) -> np.ndarray:
        return view.features[:, names.index(name)] if name in names else np.zeros(view.n)

    frozen = (column("pct_to_freeze") == 1.0) & (column("linear_probing") == 0.0)
    lora = column("lora_rank") > 0
    return np.flatnonzero(frozen & (lora if strategy == "lora" else ~lora))


def check_strategy_runs(view: SearchView, options: Mapping[str, Any]) -> None:
    """``ValueError`` naming the task and how to get such runs when it holds no candidate of the strategy."""
    strategy = str(options.get("strategy", "lora"))
    rows = strategy_rows(view, strategy)
    model = options.get("model")
    if model is not None and rows.size:
        name = resolve_model(view, str(model))
        rows = rows[np.asarray(view.models)[rows] == name]
    if rows.size == 0:
        what = "LoRA (lora_rank > 0 in extra_hps)" if strategy == "lora" else "linear-probing (no LoRA)"
        raise ValueError(
            f"method '{strategy}': task {view.name} ({view.version}) holds no {what} run with a frozen backbone "
            f"(pct_to_freeze 1, linear_probing false){f' of model {model}' if model else ''}; generate them "
            "with search_space=exp5 (python -m metagen.sweep ... hub.search_space=exp5), or leave the method out"
        )


class FrozenBackbone(OneCandidate):
    """An Exp. 5 baseline: trains the candidate of ``strategy`` closest to its defaults to ``max_epochs``, then stops.

    Args:
        view, seed, context: as every method factory (``context`` is unused).
        strategy: ``linear_probe`` or ``lora`` (:data:`STRATEGIES`).
        model: restrict to this model (``None``: every model with such runs competes; ties to the lowest index).
        defaults: overrides of the strategy's defaults.

    Raises:
        ValueError: the task holds no run of the strategy (see :func:`check_strategy_runs`).
    """

    def __init__(
        self,
        view: SearchView,
        seed: int,
        context: MetaContext | None = None,
        strategy: str = "lora",
        model: str | None = None,
        defaults: Mapping[str, Any] | None = None,
        **options: Any,
    ):
        super().__init__(view, seed, **options)
        check_strategy_runs(view, {"strategy": strategy, "model": model})
        hps = {**STRATEGIES[strategy], **(defaults or {})}
        self.candidate = default_candidate(view, model, hps, rows=strategy_rows(view, strategy))
