"""Quick-Tune (Arango et al., ICLR 2024) and its ablations on a finite candidate set (reference §4-5).

Cost-aware, meta-learned, gray-box BO: the performance predictor (deep-kernel GP with group
encoders, a conv curve encoder, budget and meta-features) starts every reset fit from its
meta-trained weights; the score is EI against y*_b divided by the meta-learned cost of reaching the
next budget. Ablations (paper Fig. 4-6): ``meta_learn=False`` (-M: train from scratch; as in the
reference this also switches cost awareness off), ``cost_aware=False`` (-C), ``gray_box=False``
(-G: full-budget evaluations), ``hub_size=k`` (k random models), ``select_model_first=True``
(pick one model by its mean final accuracy on the meta-training datasets, then tune only it).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from benchmark.methods.graybox_bo import GrayBoxBO, RefitSchedule
from benchmark.protocol import MetaContext, SearchView
from surrogates.encoding import MetaFeatureScaler, PipelineEncoder
from surrogates.gp import DeepKernelGP
from surrogates.metatrain import MetaModel, MetaTrainConfig, config_label, load_or_meta_train
from surrogates.nets import QuickTuneExtractor, init_parameters


class QuickTune(GrayBoxBO):
    """The Quick-Tune optimizer (build it with :func:`make_quicktune`).

    ``meta_label`` names the meta-training its surrogate starts from (``surrogates.metatrain.config_label``;
    ``None`` without meta-learning); the benchmark prints it with each cell.
    """

    meta_label: str | None = None


def make_quicktune(
    view: SearchView,
    seed: int,
    context: MetaContext | None,
    meta_learn: bool = True,
    cost_aware: bool = True,
    gray_box: bool = True,
    hub_size: int | None = None,
    select_model_first: bool = False,
    *,
    schedule: str | RefitSchedule | Mapping[str, Any] | None = None,
    meta_config: MetaTrainConfig | Mapping[str, Any] | None = None,
    meta_model: MetaModel | None = None,
    progress: bool = False,
    **options: Any,
) -> QuickTune:
    """A Quick-Tune optimizer for ``view``.

    Args:
        view: the task's candidate set.
        seed: seed of the initial design, hub subsampling and the surrogate.
        context: the meta-training datasets (required with ``meta_learn`` or ``select_model_first``).
        meta_learn: start fits from weights meta-trained on ``context`` (cached on disk in
            ``context.cache_dir``); ``False`` trains from scratch and forces ``cost_aware`` off.
        cost_aware: divide EI by the predicted cost of reaching the next budget.
        gray_box: one-epoch steps; ``False`` asks every pipeline at the full budget.
        hub_size: restrict the candidates to this many models, drawn with ``seed``.
        select_model_first: tune only the model with the best mean final accuracy on the
            meta-training datasets.
        schedule: refit schedule (``"reference"``, the default; a :class:`RefitSchedule` or a mapping).
        meta_config: meta-training settings (:class:`MetaTrainConfig` or a mapping of its fields).
        meta_model: an already meta-trained model (skips loading/training; for tests and benches).
        progress: show a progress bar while meta-training.
    """
    if not meta_learn and cost_aware:
        cost_aware = False  # the reference forces cost_aware=0 whenever meta_train=0
    config = meta_config if isinstance(meta_config, MetaTrainConfig) else MetaTrainConfig(**dict(meta_config or {}))
    if meta_learn and meta_model is None:
        ctx = _require_context(context, "meta_learn=True")
        meta_model = load_or_meta_train(
            ctx.store, ctx.version, ctx.train_datasets, ctx.valid_datasets, ctx.fold, ctx.cache_dir, config, progress
        )
    rng = np.random.default_rng([int(seed), 7])
    allowed = np.ones(view.n, dtype=bool)
    models = np.asarray(view.models)
    if select_model_first:
        ctx = _require_context(context, "select_model_first=True")
        chosen = best_model_on_average(ctx, sorted(set(view.models)))
        allowed &= models == chosen
    if hub_size is not None:
        hub = sorted(set(models[allowed].tolist()))
        if not int(hub_size) >= 1:
            raise ValueError(f"hub_size must be at least 1, got {hub_size}")
        keep = rng.choice(hub, size=min(int(hub_size), len(hub)), replace=False)
        allowed &= np.isin(models, keep)

    if meta_learn:
        assert meta_model is not None
        encoder, scaler = meta_model.encoder, meta_model.meta_scaler
        if meta_model.max_epochs < view.max_epochs:
            raise ValueError(
                f"the meta-trained model covers {meta_model.max_epochs} epochs but the task has "
                f"{view.max_epochs}; meta-train on the same version as the task"
            )
        initial_state = meta_model.perf_state
        cost_model = meta_model.cost_model() if cost_aware else None
        if cost_aware and cost_model is None:
            raise ValueError("cost_aware=True needs a meta-trained cost predictor (meta_config cost=True)")
        net: dict[str, Any] = {"hidden": meta_model.config.hidden, "out_dim": meta_model.config.out_dim,
               "use_meta": meta_model.config.use_meta, "dropout": meta_model.config.dropout}  # fmt: skip
    else:
        encoder = PipelineEncoder.fit(view.features, view.feature_names)
        scaler = MetaFeatureScaler()
        initial_state, cost_model = None, None
        net = scratch_network(config)
    meta = scaler.transform(view.meta_features) if net["use_meta"] else None
    net_epochs = meta_model.max_epochs if meta_learn and meta_model is not None else view.max_epochs
    optimizer = QuickTune(
        view, seed, model_factory=network_factory(encoder, net_epochs, net), encoder=encoder, meta=meta,
        initial_state=initial_state, cost_model=cost_model, schedule=schedule,
        step=1 if gray_box else view.max_epochs, allowed=allowed, net_epochs=net_epochs, **options,
    )  # fmt: skip
    if meta_learn and meta_model is not None:
        optimizer.meta_label = config_label(meta_model.config)
    return optimizer


def scratch_network(config: MetaTrainConfig | None = None) -> dict[str, Any]:
    """Sizes of Quick-Tune's kernel network trained from scratch (no meta-features): ``config``'s (default:
    :class:`MetaTrainConfig`'s) ``hidden``, ``out_dim`` and ``dropout``."""
    config = config or MetaTrainConfig()
    return {"hidden": config.hidden, "out_dim": config.out_dim, "use_meta": False, "dropout": config.dropout}


def network_factory(
    encoder: PipelineEncoder, net_epochs: int, net: Mapping[str, Any]
) -> Callable[[torch.Generator], DeepKernelGP]:
    """``generator -> DeepKernelGP`` with Quick-Tune's kernel network of sizes ``net`` over ``encoder``'s pipelines
    and ``net_epochs``-long curves, initialised from ``generator``."""

    def factory(generator: torch.Generator) -> DeepKernelGP:
        model = DeepKernelGP(QuickTuneExtractor(encoder.n_model, encoder.dim, net_epochs, **net))
        init_parameters(model.extractor, generator)
        return model

    return factory


def _require_context(context: MetaContext | None, why: str) -> MetaContext:
    if context is None:
        raise ValueError(f"Quick-Tune with {why} needs a MetaContext (benchmark.task.make_context); got None")
    if not context.train_datasets:
        raise ValueError(f"Quick-Tune with {why} needs meta-training datasets; the context has none")
    return context


def best_model_on_average(context: MetaContext, candidates: list[str]) -> str:
    """The candidate model with the best mean final accuracy over the meta-training datasets.

    Per dataset, a model's score is the mean last accuracy of its runs there; datasets where it has
    no run do not count; the score is the mean over datasets. Models never run score ``-inf``.
    """
    from surrogates.data import load_store_tasks

    scores: dict[str, list[float]] = {m: [] for m in candidates}
    for task in load_store_tasks(context.store, context.version, context.train_datasets):
        final = task.final()
        models = np.asarray(task.models)
        for m in candidates:
            vals = final[(models == m) & np.isfinite(final)]
            if vals.size:
                scores[m].append(float(vals.mean()))
    mean = {m: (float(np.mean(v)) if v else -np.inf) for m, v in scores.items()}
    if all(v == -np.inf for v in mean.values()):
        warnings.warn("no candidate model has runs on the meta-training datasets; taking the first", stacklevel=2)
    return max(candidates, key=lambda m: (mean[m], m == candidates[0]))
