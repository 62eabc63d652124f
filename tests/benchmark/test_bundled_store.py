"""The bundled store (stores/offline10-64px) holds each hub model's default pipeline on every dataset, and the
no-HPO baselines train exactly those runs (not merely the closest candidate)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from benchmark.methods.baselines import default_candidate
from benchmark.task import load_tasks
from metagen.search_space import SearchSpace
from metagen.store import StoreReader

STORE = Path(__file__).resolve().parents[2] / "stores" / "offline10-64px"


def test_every_default_pipeline_is_stored_and_is_what_default_model_trains() -> None:
    space = SearchSpace.load("hub6")
    runs = StoreReader(STORE).scan_runs().collect()
    tasks = load_tasks(STORE, "offline64")
    assert len(tasks) == 10
    for task in tasks:
        for model in space.models:
            default = space.default_pipeline(model.name)
            match = runs.filter(pl.col("dataset") == task.dataset)
            for name, value in default.items():
                match = match.filter(pl.col(name).is_null() if value is None else pl.col(name) == value)
            assert len(match) == 1, f"{task.dataset}: no default pipeline of {model.name} in the store"
            chosen = default_candidate(task.view, model.name)
            assert task.view.pipeline_ids[chosen] == match["pipeline_id"][0], (task.dataset, model.name)
