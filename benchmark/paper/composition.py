"""The composition table: per version of the store, its datasets, models, curves, epochs and run statuses,
next to the sizes of the paper's meta-dataset (reference §3.1) where the version is one of the paper's."""

from __future__ import annotations

import polars as pl

from metagen.store import StoreReader
from metagen.store.schema import STATUSES
from metagen.store.synth import PROFILES


def composition_table(store: str, versions: list[str]) -> pl.DataFrame:
    """One row per version: ``datasets, models, curves, epochs``, a count per status, and the paper's
    ``paper_datasets, paper_curves, paper_epochs`` (null for a version the paper does not have)."""
    reader = StoreReader(store)
    paper = {p.version: p for p in PROFILES["paper"]}
    rows = []
    for v in versions:
        runs = reader.scan_runs(v).select("dataset", "model", "status", "n_epochs").collect()
        row = {
            "version": v,
            "datasets": runs["dataset"].n_unique(),
            "models": runs["model"].n_unique(),
            "curves": runs.height,
            "epochs": int(runs["n_epochs"].sum() or 0),
        }
        row |= {s: int((runs["status"] == s).sum()) for s in STATUSES}
        p = paper.get(v)
        row |= {"paper_datasets": p.n_datasets if p else None, "paper_curves": p.n_curves if p else None,
                "paper_epochs": p.n_epochs if p else None}  # fmt: skip
        rows.append(row)
    return pl.DataFrame(
        rows, schema_overrides={k: pl.Int64() for k in ("paper_datasets", "paper_curves", "paper_epochs")}
    )


def composition_markdown(table: pl.DataFrame) -> str:
    """The table in markdown (paper sizes in parentheses where known)."""
    cols = ["version", "datasets", "models", "curves", "epochs", *STATUSES]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in table.iter_rows(named=True):
        cells = []
        for c in cols:
            paper = r.get(f"paper_{c}")
            cells.append(f"{r[c]:,}" + (f" (paper {paper:,})" if paper is not None else "") if c != "version" else r[c])
        lines.append("| " + " | ".join(str(x) for x in cells) + " |")
    return "\n".join(lines) + "\n"
