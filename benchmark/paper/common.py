"""Shared pieces of the paper's outputs: the labels of an experiment per version, and RESULTS restricted to them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl

from benchmark.results import Results, cell_files, load_results, merge_results

MANIFEST = "paper.json"
"""The plan of a paper output folder (written by :func:`benchmark.paper.build.write_manifest`)."""
RUNS = "runs"
"""The folder of a paper output folder that holds one RESULTS directory per version."""


def read_manifest(out: str | Path) -> dict[str, Any]:
    """The ``paper.json`` of a paper output folder."""
    path = Path(out) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{out} has no {MANIFEST}; is it an output folder of `python -m benchmark.paper`?")
    return dict(json.loads(path.read_text()))


def experiment_labels(manifest: Mapping[str, Any], key: str) -> dict[str, list[str]]:
    """Per version, the labels that experiment ``key`` plots (versions without it left out)."""
    out = {}
    for version, v in manifest["versions"].items():
        exp = v["experiments"].get(key)
        if exp and exp["labels"]:
            out[version] = list(exp["labels"])
    return out


def load_paper_results(out: str | Path, manifest: Mapping[str, Any]) -> Results | None:
    """Every version's RESULTS of a paper output folder, merged (``None`` when no cell has finished)."""
    parts = [
        load_results(Path(out) / v["results"])
        for v in manifest["versions"].values()
        if cell_files(Path(out) / v["results"])
    ]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else merge_results(parts)


def subset(results: Results, labels: Mapping[str, Sequence[str]]) -> Results | None:
    """The runs of ``labels[version]`` in each version (``None`` when there are none): ranks and tables of an
    experiment compare only its own methods."""
    keep = pl.DataFrame([(v, m) for v, ms in labels.items() for m in ms], schema=["version", "method"], orient="row")
    runs = results.runs.join(keep, on=["version", "method"], how="semi")
    if runs.is_empty():
        return None
    events = results.events.join(keep, on=["version", "method"], how="semi")
    stats = results.stats.join(keep, on=["version", "method"], how="semi")
    return replace(results, runs=runs, events=events, stats=stats)
