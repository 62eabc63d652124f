"""What a tuning session knows before training: the meta_store's search space and settings, and the
candidate pipelines of the new dataset (a fixed seeded sample of that space) as a ``SearchView``.

Imports neither torch nor timm.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmark.protocol import SearchView
from metagen.search_space import CONF_DIR, SearchSpace
from metagen.store import StoreReader
from metagen.store.encoding import encode_hyperparameters
from metagen.store.schema import HYPERPARAMETERS
from metagen.sweep.plan import dataset_rng, sample_pipelines
from metagen.tune.config import TuneConfigError


@dataclass(frozen=True)
class MetaStoreInfo:
    """What a tuning session takes from its meta_store.

    Attributes:
        path: the store.
        version: the version meta-trained on.
        datasets: its datasets.
        models: models of its runs (sorted).
        space: name of the search space its runs were sampled from.
        max_epochs: the longest curve (the per-pipeline epoch budget by default).
        schedule_epochs: LR schedule length of its runs (50 unless recorded otherwise).
        img_size: input resolution of its runs (``None`` = each model's default).
        random_init: models whose runs were trained from random init.
        epoch_cost: per model, the median seconds of one epoch (train + eval).
        time_clock: the clock its epoch times were measured with.
    """

    path: str
    version: str
    datasets: tuple[str, ...]
    models: tuple[str, ...]
    space: str
    max_epochs: int
    schedule_epochs: int
    img_size: int | None
    random_init: frozenset[str]
    epoch_cost: dict[str, float]
    time_clock: str

    @property
    def cheapest_epoch_s(self) -> float:
        """Seconds of the cheapest model's median epoch (the least one epoch can cost)."""
        return min(self.epoch_cost.values()) if self.epoch_cost else 0.0


def _majority(values: list[Any], default: Any) -> Any:
    values = [v for v in values if v is not None]
    return Counter(values).most_common(1)[0][0] if values else default


def _space_fits(space: SearchSpace, models: set[str], runs: pl.DataFrame) -> list[str]:
    """Why the runs were not sampled from ``space`` (empty when they fit)."""
    names = {m.name for m in space.models}
    problems = [f"models {sorted(models - names)} are not in it"] if models - names else []
    for hp in space.hyperparameters:
        if hp.name not in runs.columns:
            continue
        allowed = set(hp.values) | {None}
        bad = sorted({v for v in runs[hp.name].to_list() if v not in allowed}, key=str)
        if bad:
            problems.append(f"{hp.name} takes values {bad[:5]} outside {list(hp.values)}")
    return problems


def inspect_meta_store(path: str, version: str | None, search_space: str | None) -> MetaStoreInfo:
    """Reads the meta_store's settings and checks its search space (``search_space`` or inferred).

    Raises:
        TuneConfigError: no store, no/ambiguous version, or its runs do not come from the search space.
    """
    if not (Path(path) / "store.json").is_file():
        raise TuneConfigError(f"meta_store={path} is not a learning-curve store (no store.json)")
    reader = StoreReader(path)
    versions = reader.versions()
    if not versions:
        raise TuneConfigError(f"meta_store={path} holds no runs; generate a meta-dataset first (metagen.sweep)")
    if version is None:
        if len(versions) > 1:
            raise TuneConfigError(f"meta_store={path} has versions {versions}; choose one with meta_version=")
        version = versions[0]
    elif version not in versions:
        raise TuneConfigError(f"meta_version={version!r} not in meta_store={path}; versions: {versions}")
    runs = reader.scan_runs(version).collect()
    models = set(runs["model"].to_list())
    if search_space is None:
        fits = {p.stem: _space_fits(SearchSpace.load(p.stem), models, runs) for p in sorted(CONF_DIR.glob("*.yaml"))}
        matching = [n for n, why in fits.items() if not why]
        if not matching:
            raise TuneConfigError(
                f"the runs of meta_store={path} (models {sorted(models)}) fit no search space in {CONF_DIR}; "
                "pass search_space=NAME_OR_YAML of the space they were sampled from"
            )
        # the smallest space that holds every model (cpu8 rather than v1)
        space = min(matching, key=lambda n: len(SearchSpace.load(n).models))
    else:
        space = search_space
        why = _space_fits(SearchSpace.load(search_space), models, runs)
        if why:
            raise TuneConfigError(
                f"meta_store={path} was not made with search space {search_space!r}: " + "; ".join(why)
                + ". Use a meta_store of that space, or drop search_space= to use the meta_store's own"
            )  # fmt: skip
    extras = [json.loads(e) if e else {} for e in runs["extra_hps"].to_list()]
    curves = (
        reader.scan_curves(version)
        .join(reader.scan_runs(version).select("run_id", "model"), on="run_id")
        .group_by("model")
        .agg((pl.col("train_time") + pl.col("eval_time")).median().alias("cost"))
        .collect()
    )
    random_init = frozenset(
        m
        for m in models
        if _majority(runs.filter(pl.col("model") == m)["pretrained_source"].to_list(), "") == "random-init"
    )
    return MetaStoreInfo(
        path=str(path),
        version=version,
        datasets=tuple(sorted(set(runs["dataset"].to_list()))),
        models=tuple(sorted(models)),
        space=space,
        max_epochs=max(int(n) for n in runs["n_epochs"].to_list()),
        schedule_epochs=int(_majority([e.get("schedule_epochs") for e in extras], 50)),
        img_size=_majority([e.get("img_size") for e in extras], None),
        random_init=random_init,
        epoch_cost={str(r["model"]): float(r["cost"]) for r in curves.iter_rows(named=True) if r["cost"] is not None},
        time_clock=str(_majority(runs["time_clock"].to_list(), "wall")),
    )


@dataclass(frozen=True)
class Candidate:
    """One candidate pipeline of the session: its index, model, hyperparameters and store run id."""

    index: int
    model: str
    hp: dict[str, Any]
    pipeline_id: str
    run_id: str


def sample_candidates(
    space: SearchSpace, n: int, seed: int, dataset_name: str, resolve: Any, random_init: frozenset[str] = frozenset()
) -> list[Candidate]:
    """``n`` different pipelines of ``space``, drawn as the sweep planner draws them (seed, dataset name).

    ``resolve(model, hp) -> (run_id, pipeline_id)`` gives the runner's ids. Models in ``random_init`` are
    trained from random init, so their Co-Tuning weight is fixed to 0 (they have no source head), as in
    the bundled store.
    """
    ids: dict[str, str] = {}

    def key(model: str, hp: dict[str, Any]) -> str:
        if model in random_init and "cotuning_reg" in hp:
            hp["cotuning_reg"] = 0.0
        run_id, pid = resolve(model, hp)
        ids[pid] = run_id
        return pid

    picked = sample_pipelines(space, n, dataset_rng(seed, dataset_name), key)
    return [Candidate(i, m, hp, pid, ids[pid]) for i, (m, hp, pid) in enumerate(picked)]


def search_view(
    candidates: list[Candidate], dataset_name: str, version: str, max_epochs: int, meta: Mapping[str, float],
    models: list[str],
) -> SearchView:  # fmt: skip
    """The optimizer's view of the candidates, encoded like a store's runs (columns aligned by name later)."""
    # extra_hps: the LoRA hyperparameters are encoded from it (metagen.store.encoding)
    rows = [
        {
            "run_id": c.run_id,
            "pipeline_id": c.pipeline_id,
            "model": c.model,
            **{k: c.hp.get(k) for k in HYPERPARAMETERS},
            "extra_hps": json.dumps({k: v for k, v in c.hp.items() if k not in HYPERPARAMETERS}),
        }
        for c in candidates
    ]
    enc = encode_hyperparameters(pl.DataFrame(rows, infer_schema_length=None), models=sorted(models))
    names = tuple(c for c in enc.columns if c not in ("run_id", "pipeline_id"))
    features = enc.select(names).to_numpy().astype(np.float64)
    features.setflags(write=False)
    return SearchView(
        name=dataset_name,
        version=version,
        pipeline_ids=tuple(c.pipeline_id for c in candidates),
        models=tuple(c.model for c in candidates),
        features=features,
        feature_names=names,
        max_epochs=int(max_epochs),
        meta_features={k: float(v) for k, v in meta.items()},
    )
