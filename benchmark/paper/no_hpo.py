"""Table 2, "finetuning without HPO": single models with default hyperparameters vs. Quick-Tune.

Regret and rank at the end of the budget, mean ± std over datasets (seeds averaged per dataset) with the
95 % Student-t half-width, ranks among the table's methods only (:func:`benchmark.metrics.summary_table`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from benchmark.metrics import summary_markdown, summary_table
from benchmark.paper.common import subset
from benchmark.results import Results


def no_hpo_table(results: Results, labels: Mapping[str, Sequence[str]]) -> pl.DataFrame | None:
    """One row per (version, method) of the table at 100 % of the budget; ``None`` without results."""
    sub = subset(results, labels)
    return None if sub is None else summary_table(sub, fractions=(1.0,))


def no_hpo_markdown(table: pl.DataFrame) -> str:
    """The table in the paper's layout: methods as rows, regret and rank per version."""
    return summary_markdown(table).replace("### 100 % of the budget\n", "").strip() + "\n"
