"""The encoded hyperparameter table: one numeric row per run, model one-hot first.

Unscaled on purpose: scaling must be fitted on meta-training data only (the surrogates do it).
Categoricals are one-hot with ``None`` as its own category; booleans are 0/1; a nullable
numeric gets 0 where it is NULL plus an explicit ``<name>=None`` indicator column, so inactive
conditionals are never confused with a real 0.

The LoRA hyperparameters (``lora_rank``, ``lora_alpha``, ``lora_targets``; ``extra_hps``, not schema columns) are
encoded after the others, in the same way, only when some run of the table has ``lora_rank``: a rank of 0 where
it is absent, ``lora_alpha`` with its ``=None`` indicator, ``lora_targets`` one-hot. Tables without LoRA runs are
encoded exactly as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from metagen.store.schema import HYPERPARAMETER_COLUMNS

LORA_RANK, LORA_ALPHA, LORA_TARGETS = "lora_rank", "lora_alpha", "lora_targets"
CATEGORICAL = tuple(c.name for c in HYPERPARAMETER_COLUMNS if c.type == "string")
BOOLEAN = tuple(c.name for c in HYPERPARAMETER_COLUMNS if c.type == "bool")
NUMERIC = tuple(c.name for c in HYPERPARAMETER_COLUMNS if c.name not in CATEGORICAL + BOOLEAN)
NULLABLE_NUMERIC = tuple(c.name for c in HYPERPARAMETER_COLUMNS if c.name in NUMERIC and c.nullable)


def encode_hyperparameters(
    runs: pl.DataFrame,
    models: Sequence[str] | None = None,
    categories: Mapping[str, Sequence[str]] | None = None,
) -> pl.DataFrame:
    """Encode the runs' pipelines as float columns.

    Args:
        runs: rows of the runs table.
        models: model vocabulary in column order (default: the models present, sorted).
        categories: per categorical hyperparameter, its values in column order (default: the
            values present, sorted); ``None`` is always added as a category.

    Returns:
        ``run_id``, ``pipeline_id``, then ``model=<name>`` columns, then the hyperparameters.
    """
    models = list(models) if models is not None else sorted(runs["model"].unique().to_list())
    unknown = sorted(set(runs["model"].to_list()) - set(models))
    if unknown:
        raise ValueError(f"models {unknown} are not in the given model vocabulary")
    cols: list[pl.Expr] = [pl.col("run_id"), pl.col("pipeline_id")]
    cols += [(pl.col("model") == m).cast(pl.Float64).alias(f"model={m}") for m in models]
    for name in CATEGORICAL:
        values = list((categories or {}).get(name, sorted(v for v in runs[name].unique().to_list() if v is not None)))
        cols += [(pl.col(name) == v).fill_null(False).cast(pl.Float64).alias(f"{name}={v}") for v in values]
        cols.append(pl.col(name).is_null().cast(pl.Float64).alias(f"{name}=None"))
    cols += [pl.col(name).cast(pl.Float64) for name in BOOLEAN]
    for name in NUMERIC:
        cols.append(pl.col(name).cast(pl.Float64).fill_null(0.0))
        if name in NULLABLE_NUMERIC:
            cols.append(pl.col(name).is_null().cast(pl.Float64).alias(f"{name}=None"))
    return runs.select(cols + _lora_columns(runs))


def _extra(name: str) -> pl.Expr:
    return pl.col("extra_hps").str.json_path_match(f"$.{name}")


def _lora_columns(runs: pl.DataFrame) -> list[pl.Expr]:
    """The LoRA columns (see the module docstring); none when no run has ``lora_rank``."""
    if "extra_hps" not in runs.columns or runs.is_empty():
        return []
    lora = runs.select(rank=_extra(LORA_RANK), targets=_extra(LORA_TARGETS))
    if lora["rank"].is_null().all():
        return []
    targets = sorted(v for v in lora["targets"].unique().to_list() if v is not None)
    alpha = _extra(LORA_ALPHA).cast(pl.Float64)
    return [
        _extra(LORA_RANK).cast(pl.Float64).fill_null(0.0).alias(LORA_RANK),
        alpha.fill_null(0.0).alias(LORA_ALPHA),
        alpha.is_null().cast(pl.Float64).alias(f"{LORA_ALPHA}=None"),
        *((_extra(LORA_TARGETS) == v).fill_null(False).cast(pl.Float64).alias(f"{LORA_TARGETS}={v}") for v in targets),
        _extra(LORA_TARGETS).is_null().cast(pl.Float64).alias(f"{LORA_TARGETS}=None"),
    ]
