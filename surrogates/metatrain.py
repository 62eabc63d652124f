"""Meta-training of Quick-Tune's performance and cost predictors on other datasets, with a disk cache.

Each iteration samples one meta-training dataset and ``batch_size`` (run, budget) pairs of it,
takes one Adam step on the GP's negative marginal log-likelihood of that batch (the GP is conditioned
on the batch itself) and one on the cost network's MSE; every ``val_every`` iterations both are
scored on fixed validation episodes (context batch -> query batch of a validation dataset) and the
best states are kept (reference §4.1-4.2). Scaling (pipeline encoder, meta-features, log cost) is
fitted on the meta-training datasets only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from surrogates import compiled_meta
from surrogates.compiled_meta import CompiledMetaStep
from surrogates.cost import CostPredictor, log_cost_stats
from surrogates.data import Batch, BatchArrays, EncodedTask, TaskData, content_hash
from surrogates.encoding import MetaFeatureScaler, PipelineEncoder
from surrogates.gp import DeepKernelGP
from surrogates.nets import QuickTuneExtractor, init_parameters

FORMAT = 1
"""Bumped when the checkpoint layout changes (old cache entries are then ignored)."""


@dataclass(frozen=True)
class MetaTrainConfig:
    """Meta-training settings (defaults: our cheaper schedule; :data:`REFERENCE_META` is the paper's).

    Attributes:
        iterations: Adam steps (one batch of one dataset each).
        batch_size: (run, budget) pairs per step; also the size of validation context/query sets.
        lr, lr_min: cosine-annealed learning rate from ``lr`` to ``lr_min``.
        val_every, val_episodes: validation period and number of fixed validation episodes.
        hidden, out_dim, dropout: kernel-network sizes (reference: 32, 32, 0.25).
        use_meta: feed dataset meta-features to the kernel network.
        gp_lr_factor: learning-rate multiplier of the GP hyperparameters (mean, outputscale,
            lengthscale, noise) relative to the network (reference: 1).
        cost: also meta-train the cost predictor.
        seed: seed of batch sampling and initialisation.
    """

    iterations: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    lr_min: float = 1e-7
    val_every: int = 50
    val_episodes: int = 20
    hidden: int = 32
    out_dim: int = 32
    dropout: float = 0.25
    use_meta: bool = True
    cost: bool = True
    seed: int = 0
    gp_lr_factor: float = 10.0

    def digest(self) -> str:
        """A short hash of the settings (cache key)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


DEFAULT_META = MetaTrainConfig()
"""Our default meta-training (see docs/quicktune-deviations.md)."""

REFERENCE_META = MetaTrainConfig(iterations=10_000, lr=1e-4, val_every=20, val_episodes=50, gp_lr_factor=1.0)
"""The reference code's meta-training (``main_experiment.py`` defaults, §4.1)."""


def config_label(config: MetaTrainConfig) -> str:
    """Which meta-training ``config`` is: ``"default"``, ``"reference"`` or ``"custom-<digest>"`` (printed per cell)."""
    if config == DEFAULT_META:
        return "default"
    return "reference" if config == REFERENCE_META else f"custom-{config.digest()}"


@dataclass
class MetaModel:
    """Meta-trained predictors and the scaling they expect.

    Attributes:
        encoder: pipeline encoder fitted on the meta-training datasets.
        meta_scaler: meta-feature scaler fitted on the meta-training datasets.
        max_epochs: ``E`` the networks were built for.
        config: the meta-training settings.
        perf_state: state dict of the :class:`DeepKernelGP` (Quick-Tune extractor).
        cost_state: state dict of the :class:`CostPredictor` (``None`` without cost training).
        info: provenance and validation scores (data hash, datasets, best iteration, ...).
    """

    encoder: PipelineEncoder
    meta_scaler: MetaFeatureScaler
    max_epochs: int
    config: MetaTrainConfig
    perf_state: dict[str, Any]
    cost_state: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def extractor(self) -> QuickTuneExtractor:
        """A fresh (untrained) extractor of the right shape."""
        c = self.config
        return QuickTuneExtractor(
            self.encoder.n_model, self.encoder.dim, self.max_epochs, c.hidden, c.out_dim, use_meta=c.use_meta,
            dropout=c.dropout,
        )  # fmt: skip

    def perf_model(self, generator: torch.Generator | None = None) -> DeepKernelGP:
        """The performance predictor with the meta-trained weights (dropout draws from ``generator``)."""
        model = DeepKernelGP(self.extractor())
        model.load_state_dict(self.perf_state)
        if generator is not None:
            _set_dropout_generator(model, generator)
        return model

    def cost_model(self) -> CostPredictor | None:
        """The cost predictor with its meta-trained weights (``None`` if not trained)."""
        if self.cost_state is None:
            return None
        model = CostPredictor(self.encoder.dim, self.max_epochs, hidden=self.config.hidden)
        model.load_state_dict(self.cost_state)
        return model.eval()

    def save(self, path: str | Path) -> None:
        """Write atomically to ``path`` (a torch file of tensors and plain values)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FORMAT,
            "encoder": self.encoder.to_dict(),
            "meta_scaler": {"mean": list(self.meta_scaler.mean), "std": list(self.meta_scaler.std)},
            "max_epochs": self.max_epochs,
            "config": asdict(self.config),
            "perf_state": self.perf_state,
            "cost_state": self.cost_state,
            "info": json.dumps(self.info),
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> MetaModel:
        """Read a file written by :meth:`save`; raises ``ValueError`` naming the file if it is unusable."""
        try:
            p = torch.load(path, weights_only=True)
        except Exception as e:  # torch raises several types for damaged files
            raise ValueError(f"{path}: not a readable meta-trained surrogate ({e}); delete it to retrain") from e
        if not isinstance(p, dict) or p.get("format") != FORMAT:
            raise ValueError(f"{path}: unknown checkpoint format; delete it to retrain")
        return cls(
            encoder=PipelineEncoder.from_dict(p["encoder"]),
            meta_scaler=MetaFeatureScaler(tuple(p["meta_scaler"]["mean"]), tuple(p["meta_scaler"]["std"])),
            max_epochs=int(p["max_epochs"]),
            config=MetaTrainConfig(**p["config"]),
            perf_state=p["perf_state"],
            cost_state=p["cost_state"],
            info=json.loads(p["info"]),
        )


def _set_dropout_generator(module: torch.nn.Module, generator: torch.Generator) -> None:
    from surrogates.nets import GeneratorDropout1d

    for m in module.modules():
        if isinstance(m, GeneratorDropout1d):
            m.generator = generator


def meta_train(
    train: Sequence[TaskData],
    valid: Sequence[TaskData],
    config: MetaTrainConfig = DEFAULT_META,
    progress: bool = False,
    gp_class: type[DeepKernelGP] = DeepKernelGP,
    compiled: bool | None = None,
) -> MetaModel:
    """Meta-train both predictors on ``train`` datasets, selecting checkpoints on ``valid`` datasets.

    ``gp_class`` is the GP implementation (``surrogates.gp_gpytorch.GpytorchDeepKernelGP``: the
    previous, slower one, for the speed-up benchmark); both give the same model. ``compiled``: whether the steps
    run compiled (:class:`surrogates.compiled_meta.CompiledMetaStep`) or through autograd (:class:`TorchMetaStep`);
    by default compiled when numba is importable and ``gp_class`` is :class:`DeepKernelGP`. The two give the same
    model up to floating-point rounding; ``info["implementation"]`` records which ran.
    """
    if not train:
        raise ValueError("meta-training needs at least one training dataset")
    names = train[0].feature_names
    for t in list(train) + list(valid):
        if t.feature_names != names:
            raise ValueError(f"dataset {t.name!r} is encoded with other columns than {train[0].name!r}")
    max_epochs = max(t.max_epochs for t in list(train) + list(valid))
    encoder = PipelineEncoder.fit(np.concatenate([t.features for t in train]), names)
    meta_scaler = MetaFeatureScaler.fit([t.meta for t in train])
    log_mean, log_std = log_cost_stats([t.cost for t in train])
    enc_train = [EncodedTask(t, encoder, meta_scaler, max_epochs) for t in train]
    enc_valid = [EncodedTask(t, encoder, meta_scaler, max_epochs) for t in valid]

    gen = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    stub = MetaModel(encoder, meta_scaler, max_epochs, config, {})
    perf = gp_class(stub.extractor())
    init_parameters(perf, gen)
    cost = CostPredictor(encoder.dim, max_epochs, log_mean, log_std, hidden=config.hidden)
    init_parameters(cost, gen)
    episodes = _validation_episodes(enc_valid, config, np.random.default_rng(config.seed + 1))
    if not episodes:
        warnings.warn(
            f"Quick-Tune meta-training on {len(train)} dataset(s) ({', '.join(t.name for t in train)}) has no "
            f"validation dataset (the fold scheme sets one aside only when the version has at least as many "
            f"datasets as folds, 5 by default): checkpoint selection is off, the state after the last of "
            f"{config.iterations} iterations is kept",
            stacklevel=2,
        )

    if compiled is None:
        compiled = compiled_meta.available(perf)
    trainer: MetaStep = CompiledMetaStep(perf, cost, config.cost) if compiled else TorchMetaStep(perf, cost, config)
    lrs = lr_schedule(config)
    best = {"perf": (np.inf, perf.state(), 0), "cost": (np.inf, _copy_state(cost), 0)}
    history: list[tuple[int, float, float]] = []
    with trainer.running():
        for it in tqdm(range(1, config.iterations + 1), desc="meta-train", disable=not progress, mininterval=2):
            task = enc_train[int(rng.integers(len(enc_train)))]
            trainer.step(task.sample_arrays(rng, config.batch_size), lrs[it - 1])
            if episodes and (it % config.val_every == 0 or it == config.iterations):
                v_perf, v_cost = trainer.validate(episodes)
                history.append((it, v_perf, v_cost))
                if v_perf < best["perf"][0]:
                    best["perf"] = (v_perf, trainer.perf_state(), it)
                if config.cost and v_cost < best["cost"][0]:
                    best["cost"] = (v_cost, trainer.cost_state(), it)
    perf_state = best["perf"][1] if episodes else trainer.perf_state()
    cost_state = (best["cost"][1] if episodes else trainer.cost_state()) if config.cost else None
    info = {
        "train_datasets": [t.name for t in train],
        "valid_datasets": [t.name for t in valid],
        "train_hash": content_hash(train),
        "valid_hash": content_hash(valid),
        "best_iteration_perf": best["perf"][2],
        "best_val_mse_perf": float(best["perf"][0]),
        "best_iteration_cost": best["cost"][2],
        "best_val_mse_logcost": float(best["cost"][0]),
        "history": history,
        "implementation": trainer.name,
    }
    return MetaModel(encoder, meta_scaler, max_epochs, config, perf_state, cost_state, info)


def lr_schedule(config: MetaTrainConfig) -> np.ndarray:
    """``(iterations, 3)`` learning rates of the network, the GP hyperparameters and the cost network at each
    iteration: torch's ``CosineAnnealingLR`` from ``lr`` (``lr * gp_lr_factor``) to ``lr_min``, stepped once per
    iteration (its recursive form, so the values are the ones an optimizer stepped by it would use)."""
    params = [torch.zeros(1, requires_grad=True) for _ in range(2)]
    opt = torch.optim.SGD([{"params": params[:1], "lr": config.lr},
                           {"params": params[1:], "lr": config.lr * config.gp_lr_factor}])  # fmt: skip
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.iterations, config.lr_min)
    out = np.empty((config.iterations, 3))
    for i in range(config.iterations):
        net, gp = (g["lr"] for g in opt.param_groups)
        out[i] = (net, gp, net)
        opt.step()
        sched.step()
    return out


class MetaStep(Protocol):
    """One implementation of meta-training's steps: what :func:`meta_train`'s loop drives."""

    name: str

    def running(self) -> contextlib.AbstractContextManager[None]:
        """The context the training loop runs in."""
        ...

    def step(self, batch: BatchArrays, lrs: Sequence[float]) -> None:
        """One iteration on ``batch`` with learning rates (network, GP hyperparameters, cost network)."""
        ...

    def validate(self, episodes: Sequence[tuple[Batch, Batch]]) -> tuple[float, float]:
        """Validation MSE of the performance GP and of the cost network."""
        ...

    def perf_state(self) -> dict[str, Any]:
        """A copy of the performance GP's state dict."""
        ...

    def cost_state(self) -> dict[str, Any]:
        """A copy of the cost predictor's state dict."""
        ...


class TorchMetaStep:
    """The meta-training steps through autograd and torch's Adam (the path without numba, and the oracle of
    :class:`surrogates.compiled_meta.CompiledMetaStep`). Trains ``perf`` and ``cost`` in place."""

    name = "torch"

    def __init__(self, perf: DeepKernelGP, cost: CostPredictor, config: MetaTrainConfig):
        self.perf, self.cost, self.train_cost = perf, cost, config.cost
        gp_params = list(perf.gp.parameters())
        gp_ids = {id(p) for p in gp_params}
        net_params = [p for p in perf.parameters() if id(p) not in gp_ids]
        self.opt_p = torch.optim.Adam(
            [{"params": net_params, "lr": config.lr}, {"params": gp_params, "lr": config.lr * config.gp_lr_factor}],
            **perf.adam_options,
        )
        self.opt_c = torch.optim.Adam(cost.parameters(), lr=config.lr, **perf.adam_options)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Training mode until a validation (switching modes walks every submodule: not per step)."""
        self.perf.train()
        self.cost.train()
        yield

    def step(self, arrays: BatchArrays, lrs: Sequence[float]) -> None:
        """One iteration on a batch with learning rates (network, GP hyperparameters, cost network)."""
        batch = Batch.from_arrays(arrays)
        for group, lr in zip(self.opt_p.param_groups, lrs[:2], strict=True):
            group["lr"] = lr
        self.opt_c.param_groups[0]["lr"] = lrs[2]
        self.opt_p.zero_grad()
        loss = self.perf.loss(batch)
        if torch.isfinite(loss):
            loss.backward()
            self.opt_p.step()
        if self.train_cost:
            self.opt_c.zero_grad()
            self.cost.loss(batch).backward()
            self.opt_c.step()

    def validate(self, episodes: Sequence[tuple[Batch, Batch]]) -> tuple[float, float]:
        """Mean MSE of the GP mean (conditioned on each context) and of standardized log cost on the queries."""
        p, c = [], []
        for ctx, query in episodes:
            mean, _ = self.perf.predict(ctx, query)
            p.append(float(np.mean((mean - query.y.numpy()) ** 2)))
            if self.train_cost:
                with torch.no_grad():
                    self.cost.eval()
                    c.append(float(self.cost.loss(query)))
        self.perf.train()
        self.cost.train()
        return float(np.mean(p)), float(np.mean(c)) if c else float("nan")

    def perf_state(self) -> dict[str, Any]:
        """A copy of the performance GP's state dict."""
        return self.perf.state()

    def cost_state(self) -> dict[str, Any]:
        """A copy of the cost predictor's state dict."""
        return _copy_state(self.cost)


def _copy_state(module: torch.nn.Module) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _validation_episodes(
    tasks: Sequence[EncodedTask], config: MetaTrainConfig, rng: np.random.Generator
) -> list[tuple[Batch, Batch]]:
    if not tasks:
        return []
    out = []
    for _ in range(config.val_episodes):
        t = tasks[int(rng.integers(len(tasks)))]
        out.append((t.sample(rng, config.batch_size), t.sample(rng, config.batch_size)))
    return out


def cache_path(cache_dir: str | Path, version: str, fold: int, data_hash: str, config: MetaTrainConfig) -> Path:
    """Where a meta-trained model is cached: keyed by data content hash, fold, settings hash and the implementation
    :func:`meta_train` uses here (``numba`` or ``torch``: their models differ by floating-point rounding, so a cache
    written by one is not taken for the other's)."""
    implementation = "numba" if compiled_meta.enabled() else "torch"
    return Path(cache_dir) / f"quicktune-{version}-fold{fold}-{data_hash}-{config.digest()}-{implementation}.pt"


def load_or_meta_train(
    store: str,
    version: str,
    train_datasets: Sequence[str],
    valid_datasets: Sequence[str] = (),
    fold: int = 0,
    cache_dir: str | Path | None = None,
    config: MetaTrainConfig = DEFAULT_META,
    progress: bool = False,
) -> MetaModel:
    """The meta-trained model of a fold: from the cache if present, else trained (and cached)."""
    from surrogates.data import load_store_tasks

    overlap = sorted(set(train_datasets) & set(valid_datasets))
    if overlap:
        raise ValueError(f"datasets {overlap} are both meta-training and validation datasets")
    tasks = load_store_tasks(store, version, list(train_datasets) + list(valid_datasets))
    by_name = {t.name: t for t in tasks}
    train = [by_name[d] for d in sorted(train_datasets)]
    valid = [by_name[d] for d in sorted(valid_datasets)]
    path = None
    if cache_dir is not None:
        key = hashlib.sha256(f"{content_hash(train)}|{content_hash(valid)}".encode()).hexdigest()[:16]
        path = cache_path(cache_dir, version, fold, key, config)
        if path.is_file():
            try:
                return MetaModel.load(path)
            except ValueError as e:
                warnings.warn(f"{e}; retraining", stacklevel=2)
    model = meta_train(train, valid, config, progress=progress)
    model.info.update({"store": str(store), "version": version, "fold": fold})
    if path is not None:
        model.save(path)
    return model
