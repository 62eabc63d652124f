"""A small learning-curve store for benchmark tests, built in-process (module-scoped: it is read-only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from benchmark.methods.baselines import DEFAULT_HYPERPARAMETERS
from metagen.search_space import SearchSpace
from metagen.store import StoreMetadata, create_store, write_partition
from metagen.store.records import run_file_table, split_run_tables
from metagen.store.schema import HYPERPARAMETERS
from tests.factories import make_run

MODELS = (
    "xcit_small_12_p8_384.fb_dist_in1k",
    "dla46x_c.in1k",
    "edgenext_xx_small.in1k",
    "mobilevit_xs.cvnets_in1k",
)
MAX_EPOCHS = 9
BUDGET_S = 2500.0


def pipeline_kind(i: int) -> str:
    """What the curve of pipeline ``i`` looks like: ok | timeout | diverged | error (no epoch)."""
    if i % 11 == 10:
        return "error"
    return {1: "timeout", 4: "diverged"}.get(i % 6, "ok")


def _curve(rng: np.random.Generator, kind: str, final: float, tau: float, cost: float) -> list[dict[str, Any]]:
    n = {"ok": MAX_EPOCHS, "error": 0}.get(kind, int(rng.integers(2, MAX_EPOCHS)))
    rows = []
    for e in range(1, n + 1):
        acc = final * (1 - np.exp(-e / tau)) + 0.05
        diverged = kind == "diverged" and e == n
        rows.append(
            {
                "epoch": e,
                "train_loss": float("nan") if diverged else 1.0 / e,
                "eval_top1": float("nan") if diverged else float(acc),
                "train_time": cost * 0.8,
                "eval_time": cost * 0.2,
            }
        )
    return rows


def build_store(
    root: Path,
    datasets: tuple[str, ...] = ("A", "B", "C"),
    n_pipelines: int = 24,
    seed: int = 0,
    version: str = "micro",
    frozen: int = 0,
) -> Path:
    """A store with ``n_pipelines`` pipelines per dataset over :data:`MODELS`: full, truncated (timeout),
    diverged (nan at the last epoch) and failed (no epoch) curves; pipeline 0 is the default-HP XCiT;
    one pipeline is run twice (seeds 0 and 1). ``frozen`` more pipelines per dataset have a frozen backbone
    (``pct_to_freeze`` 1, no LP-FT): the even ones linear probing, the odd ones LoRA (rank 4 or 8 in ``extra_hps``)."""
    create_store(root, StoreMetadata(name="bench-test", description="benchmark test store", synthetic=True))
    space = SearchSpace.load("v1")
    rng = np.random.default_rng(seed)
    for d_index, dataset in enumerate(datasets):
        runs, curves = [], []
        for i in range(n_pipelines + 1):
            j = 2 if i == n_pipelines else i  # the last run repeats pipeline 2 with another seed
            hp_rng = np.random.default_rng([seed, j])  # the same pipelines on every dataset
            hps = {**space.sample(hp_rng), "model": MODELS[j % len(MODELS)]}
            if j == 0:
                hps = {**{k: v for k, v in DEFAULT_HYPERPARAMETERS.items() if v is not None}, "model": MODELS[0]}
            kind = pipeline_kind(j)
            run = make_run(
                f"{version}-{dataset.replace(' ', '_')}-{i:03d}",  # run ids are file-name safe
                dataset=dataset,
                version=version,
                **{**dict.fromkeys(HYPERPARAMETERS), **hps},
                seed=1 if i == n_pipelines else 0,
                max_epochs=MAX_EPOCHS,
                status=kind,
                status_message="failed" if kind == "error" else None,
                source="synthetic",
                train_size=480 + 100 * d_index,
            )
            final = float(rng.uniform(0.2, 0.9)) + (0.05 if j % len(MODELS) == d_index % len(MODELS) else 0.0)
            curve = _curve(rng, kind, min(final, 0.94), float(rng.uniform(1.0, 4.0)), float(rng.uniform(20, 200)))
            r, c = split_run_tables(run_file_table(run, curve))
            runs.append(r)
            curves.append(c)
        for k in range(frozen):
            hps = {**space.sample(np.random.default_rng([seed, 1000 + k])), "model": MODELS[k % len(MODELS)]}
            hps.update(pct_to_freeze=1.0, linear_probing=False)
            lora = {"lora_rank": 4 * (1 + k // 2 % 2), "lora_alpha": 16, "lora_targets": "qkv"} if k % 2 else {}
            run = make_run(
                f"{version}-{dataset.replace(' ', '_')}-f{k:03d}",
                dataset=dataset,
                version=version,
                **{**dict.fromkeys(HYPERPARAMETERS), **hps},
                extra_hps=lora,
                max_epochs=MAX_EPOCHS,
                source="synthetic",
                train_size=480 + 100 * d_index,
            )
            curve = _curve(rng, "ok", float(rng.uniform(0.2, 0.9)), float(rng.uniform(1.0, 4.0)), 50.0)
            r, c = split_run_tables(run_file_table(run, curve))
            runs.append(r)
            curves.append(c)
        write_partition(root, pl.concat(runs), pl.concat(curves))
    return root


@pytest.fixture(scope="module")
def frozen_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`bench_store` plus 6 frozen-backbone pipelines per dataset (3 linear probing, 3 LoRA)."""
    return build_store(tmp_path_factory.mktemp("frozen") / "store", frozen=6)


@pytest.fixture(scope="module")
def bench_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three datasets x 24 pipelines (+1 repeated), 9 epochs, micro."""
    return build_store(tmp_path_factory.mktemp("bench") / "store")
