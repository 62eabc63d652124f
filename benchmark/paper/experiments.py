"""The paper's experiments as method entries of one store version (Quick-Tune, ICLR 2024, Fig. 3-6 and Table 2).

An :class:`Entry` is one line of a figure: a label (what the cells are stored and plotted under) and the
registered method plus options it runs. :func:`version_experiments` lists, for one version of a store, every
experiment with its entries and the entries it had to leave out (a method that is not registered in this
checkout, a default model the store does not hold, ...), each with the reason. Nothing here runs a cell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmark.registry import METHODS, spec
from benchmark.task import Task

EXPERIMENTS = ("fig3", "fig4", "fig5", "fig6", "no_hpo")
"""The experiments :func:`version_experiments` knows, in the paper's order."""

TITLES = {
    "fig3": "Fig. 3: Quick-Tune vs. HPO baselines",
    "fig4": "Fig. 4: ablations of Quick-Tune (M: meta-learning, C: cost-awareness, G: gray-box)",
    "fig5": "Fig. 5: regret vs. hub size",
    "fig6": "Fig. 6: joint model + HP search vs. model first, then HPO",
    "no_hpo": "Table 2: finetuning without HPO (one model, default HPs) vs. Quick-Tune",
}

BASELINES = ("quicktune", "dyhpo", "bohb", "dehb", "asha", "gp", "random_search")
"""Fig. 3's methods (the paper's DEHB and GP are registered as ``dehb`` and ``gp`` when available)."""

ABLATIONS = ("quicktune", "quicktune-M", "quicktune-C", "quicktune-G")
"""Fig. 4's methods."""

PAPER_HUB = 24
"""Models of the paper's hub; Fig. 5's sizes are fractions of it."""

HUB_SIZES = (5, 10, 15, 20)
"""Fig. 5's sub-hub sizes in the paper (plus the whole hub)."""

DEFAULT_MODELS = (
    ("BEiT", "beit_large_patch16_512"),
    ("XCiT", "xcit_small_12_p8_384_dist"),
    ("DLA", "dla46x_c"),
)
"""Table 2's single models with default hyperparameters (the paper's aliases), ``(short name, model)``."""


def default_models(names: Sequence[str] | None) -> tuple[tuple[str, str], ...]:
    """Table 2's ``(short name, model)`` pairs: the paper's (:data:`DEFAULT_MODELS`) for ``None``, else each
    named model under its own name (a store whose hub lacks the paper's models names its own)."""
    if names is None:
        return DEFAULT_MODELS
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"default_models must name one or more different models, got {list(names)}")
    return tuple((str(n), str(n)) for n in names)


MODEL_FIRST = "quicktune-model-first"
"""Fig. 6's label of Quick-Tune restricted to one model chosen before the search."""


@dataclass(frozen=True)
class Entry:
    """One method of an experiment: ``label`` (stored and plotted under it) runs registered ``method`` with
    ``options`` (``label == method``: the registered method as it is)."""

    label: str
    method: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_variant(self) -> bool:
        """Whether the entry is a labelled variant (declared in the run config under its label)."""
        return self.label != self.method


@dataclass(frozen=True)
class Experiment:
    """One figure or table of one version: its entries and those left out, ``(label, reason)``."""

    key: str
    version: str
    entries: tuple[Entry, ...]
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def labels(self) -> list[str]:
        """The labels of the entries, in plotting order."""
        return [e.label for e in self.entries]


def availability(method: str) -> str | None:
    """Why ``method`` cannot run in this checkout (``None``: it can): not registered, or not importable."""
    if method not in METHODS:
        return f"not available: no method '{method}' is registered in benchmark.registry.METHODS"
    try:
        spec(method).load()
    except ImportError as e:
        return f"not available: {e}"
    return None


def hub_sizes(n_models: int) -> list[int]:
    """Fig. 5's sub-hub sizes for a hub of ``n_models``: the paper's 5, 10, 15, 20 (of 24), scaled by
    ``n_models / 24`` when the hub is smaller than the paper's, without duplicates and below ``n_models``
    (the whole hub is plain ``quicktune``)."""
    scale = min(1.0, n_models / PAPER_HUB)
    return sorted(k for k in {max(1, round(k * scale)) for k in HUB_SIZES} if k < n_models)


def _missing_model(tasks: Sequence[Task], model: str) -> list[str]:
    """Datasets of ``tasks`` without a candidate of ``model`` (timm name, short name or paper alias)."""
    from benchmark.methods.baselines import resolve_model

    missing = []
    for task in tasks:
        try:
            resolve_model(task.view, model)
        except ValueError:
            missing.append(task.dataset)
    return missing


def version_experiments(
    tasks: Sequence[Task],
    which: Sequence[str] = EXPERIMENTS,
    n_datasets: int | None = None,
    no_hpo_models: Sequence[str] | None = None,
) -> list[Experiment]:
    """Every experiment in ``which`` for the tasks (datasets) of one version.

    ``n_datasets`` is the number of datasets the version has (default ``len(tasks)``): meta-learning methods train
    on the other datasets of the version, also those not among ``tasks``, so they need at least 2.
    ``no_hpo_models``: Table 2's single models (``None`` = the paper's BEiT, XCiT, DLA, each left out where the
    store has no run of it; models named here must have runs on at least one of the datasets).

    Raises:
        ValueError: ``which`` names an unknown experiment, ``tasks`` is empty, or a model of ``no_hpo_models`` has
            no run on any of the datasets.
    """
    unknown = sorted(set(which) - set(EXPERIMENTS))
    if unknown:
        raise ValueError(f"unknown experiments {unknown}; choose from {list(EXPERIMENTS)}")
    if not tasks:
        raise ValueError("no datasets to plan experiments on")
    version = tasks[0].version
    others = (len(tasks) if n_datasets is None else n_datasets) - 1
    n_models = len({m for t in tasks for m in t.view.models})
    out = []
    for key in [k for k in EXPERIMENTS if k in which]:
        wanted: list[Entry] = []
        skipped: list[tuple[str, str]] = []
        if key == "fig3":
            wanted = [Entry(m, m) for m in BASELINES]
        elif key == "fig4":
            wanted = [Entry(m, m) for m in ABLATIONS]
        elif key == "fig5":
            wanted = [Entry(f"quicktune-hub{k}", "quicktune", {"hub_size": k}) for k in hub_sizes(n_models)]
            wanted.append(Entry("quicktune", "quicktune"))  # the whole hub
        elif key == "fig6":
            wanted = [Entry("quicktune", "quicktune"), Entry(MODEL_FIRST, "quicktune", {"select_model_first": True})]
        else:
            for short, model in default_models(no_hpo_models):
                missing = _missing_model(tasks, model)
                if no_hpo_models is not None and len(missing) == len(tasks):
                    have = sorted({m for t in tasks for m in t.view.models})
                    raise ValueError(f"default_models: no run of '{model}' on any dataset of version {version}; "
                                     f"its models: {have}")  # fmt: skip
                if missing:
                    where = "any of its datasets" if len(missing) == len(tasks) else ", ".join(missing)
                    skipped.append((f"default-{short}", f"the store has no run of {model} on {where}"))
                else:
                    wanted.append(Entry(f"default-{short}", "default_model", {"model": model}))
            wanted.append(Entry("quicktune", "quicktune"))
        entries = []
        for e in wanted:
            reason = availability(e.method)
            if reason is None and spec(e.method).needs_context and others < 1:
                reason = "meta-learns on the other datasets, but the version has only one dataset"
            if reason is None and e.options.get("select_model_first") and others < 1:
                reason = "chooses its model on the other datasets, but the version has only one dataset"
            if reason is None:
                entries.append(e)
            else:
                skipped.append((e.label, reason))
        out.append(Experiment(key, version, tuple(entries), tuple(skipped)))
    return out


def union_entries(experiments: Sequence[Experiment]) -> list[Entry]:
    """The entries of several experiments, each label once (first occurrence order).

    Raises:
        ValueError: one label stands for two different methods or option sets.
    """
    seen: dict[str, Entry] = {}
    for exp in experiments:
        for e in exp.entries:
            if e.label in seen and (seen[e.label].method, dict(seen[e.label].options)) != (e.method, dict(e.options)):
                raise ValueError(f"label '{e.label}' names two methods: {seen[e.label]} and {e}")
            seen.setdefault(e.label, e)
    return list(seen.values())
