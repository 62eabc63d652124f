"""Planning a sweep: which runs it consists of, derived from the config and the store at launch time.

A plan is pure data: for every dataset, ``pipelines_per_dataset`` different pipelines sampled from
the hub with a generator seeded by ``(seed, dataset name)`` (so adding a dataset or raising the
count keeps the runs already planned), optionally every hub model's default pipeline (the space's declared
defaults), their run ids, and which of them the store already holds.
Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from metagen.search_space import SearchSpace
from metagen.sweep.errors import SweepConfigError

MAX_DRAWS_PER_PIPELINE = 200
"""Sampling gives up after this many draws per wanted pipeline (a tiny space has too few pipelines)."""


@dataclass(frozen=True)
class DatasetRef:
    """A dataset of the sweep: its folder (absolute), its name (which enters the run ids) and its content
    fingerprint (``MetaAlbumDataset.fingerprint``; "" = not computed)."""

    path: str
    name: str
    fingerprint: str = ""


@dataclass(frozen=True)
class RunSpec:
    """One planned run: a pipeline (model + active hyperparameters) on one dataset with one seed.

    Attributes:
        run_id: the store's run id (what ``finetune`` writes).
        dataset: dataset folder.
        dataset_name: the dataset's name.
        model: canonical timm model name.
        hp: every active search-space hyperparameter, given explicitly to ``finetune``.
        pipeline_id: id of (model, hyperparameters, run extras), unique within the dataset.
        seed: the run's seed.
        index: position of the pipeline in its dataset's sample (0-based), or of its model in the hub for a
            default pipeline.
        is_default: a model's default pipeline (``SearchSpace.default_pipeline``), not a sampled one.
    """

    run_id: str
    dataset: str
    dataset_name: str
    model: str
    hp: dict[str, Any] = field(compare=False, hash=False)
    pipeline_id: str = ""
    seed: int = 0
    index: int = 0
    is_default: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**d)


@dataclass(frozen=True)
class Plan:
    """Every run of a sweep, in a fixed order: round-robin over the datasets (as given), first the default
    pipelines (in hub order), then each dataset's sampled pipelines in sampling order.

    Attributes:
        runs: all runs of the sweep.
        complete: run ids of ``runs`` that the store already holds (any status).
    """

    runs: tuple[RunSpec, ...]
    complete: frozenset[str] = frozenset()

    @property
    def todo(self) -> tuple[RunSpec, ...]:
        """Runs not in the store yet (to be started or resumed)."""
        return tuple(r for r in self.runs if r.run_id not in self.complete)

    def by_dataset(self) -> dict[str, tuple[int, int]]:
        """Per dataset name: (runs planned, runs complete)."""
        out: dict[str, list[int]] = {}
        for r in self.runs:
            c = out.setdefault(r.dataset_name, [0, 0])
            c[0] += 1
            c[1] += r.run_id in self.complete
        return {k: (v[0], v[1]) for k, v in out.items()}


PipelineResolver = Callable[[str, str, dict[str, Any]], tuple[str, str]]
"""``(dataset path, model, hp) -> (run id, pipeline id)``: how a pipeline becomes a run (the runner decides)."""


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def dataset_rng(seed: int, dataset_name: str) -> np.random.Generator:
    """The generator of a dataset's pipeline sample: seeded by the sweep seed and the dataset's name."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _stable_int(dataset_name)]))


def sample_pipelines(
    space: SearchSpace, n: int, rng: np.random.Generator, key: Callable[[str, dict[str, Any]], str]
) -> list[tuple[str, dict[str, Any], str]]:
    """``n`` different pipelines ``(model, active hyperparameters, key)`` drawn in order from ``rng``.

    Duplicates (same ``key(model, hps)``) are skipped, so the first ``k`` of a larger sample equal a
    sample of ``k``.

    Raises:
        SweepConfigError: the space holds fewer than ``n`` different pipelines (gives up after
            :data:`MAX_DRAWS_PER_PIPELINE` draws per pipeline).
    """
    out: list[tuple[str, dict[str, Any], str]] = []
    seen: set[str] = set()
    for _ in range(MAX_DRAWS_PER_PIPELINE * max(n, 1)):
        if len(out) == n:
            break
        sample = space.sample(rng)
        model = sample.pop("model")
        k = key(model, sample)
        if k in seen:
            continue
        seen.add(k)
        out.append((model, sample, k))
    if len(out) < n:
        raise SweepConfigError(
            f"the hub has too few different pipelines: found {len(out)} of pipelines_per_dataset={n} after "
            f"{MAX_DRAWS_PER_PIPELINE * n} draws; lower pipelines_per_dataset or widen hub.models / hub.max_params_m"
        )
    return out


def default_pipelines(space: SearchSpace) -> list[tuple[str, dict[str, Any]]]:
    """``(model, active hyperparameters)`` of every hub model's default pipeline, in hub order.

    Raises:
        SweepConfigError: the space declares no default for an active hyperparameter.
    """
    out = []
    for m in space.models:
        try:
            hps = space.default_pipeline(m.name)
        except ValueError as e:
            raise SweepConfigError(f"include_defaults=true: {e}") from None
        out.append((str(hps.pop("model")), hps))
    return out


def plan_runs(
    datasets: Sequence[DatasetRef],
    space: SearchSpace,
    pipelines_per_dataset: int,
    seed: int,
    resolve: PipelineResolver,
    complete: Iterable[str] = (),
    include_defaults: bool = False,
) -> Plan:
    """The sweep's runs: per dataset, ``pipelines_per_dataset`` different pipelines and their run ids.

    Args:
        datasets: the sweep's datasets (names must be unique).
        space: the (restricted) search space to sample from.
        pipelines_per_dataset: pipelines per dataset.
        seed: sweep seed (sampling) and run seed.
        resolve: maps a pipeline to its run id and pipeline id (``metagen.finetune``'s rules).
        complete: run ids already in the store.
        include_defaults: also every hub model's default pipeline on every dataset, unless the sample holds it
            already (the sample itself is unchanged: the same sampled pipelines with or without defaults).

    Raises:
        SweepConfigError: dataset names clash, the space is too small, or (``include_defaults``) it declares no
            default for a hyperparameter.
    """
    names = [d.name for d in datasets]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        paths = {n: [d.path for d in datasets if d.name == n] for n in dups}
        raise SweepConfigError(
            f"two dataset folders have the same dataset name {paths}; their runs would share run ids. "
            "Sweep them separately (or rename dataset_name in info.json)"
        )
    runs: list[RunSpec] = []
    for d in datasets:
        ids: dict[tuple[str, str], tuple[str, str]] = {}

        def key(model: str, hps: dict[str, Any], _d: DatasetRef = d, _ids: dict = ids) -> str:
            run_id, pid = resolve(_d.path, model, hps)
            _ids[(model, pid)] = (run_id, pid)
            return pid

        picked = sample_pipelines(space, pipelines_per_dataset, dataset_rng(seed, d.name), key)
        for i, (model, hps, pid) in enumerate(picked):
            run_id, _ = ids[(model, pid)]
            runs.append(RunSpec(run_id, d.path, d.name, model, hps, pid, int(seed), i))
        if include_defaults:
            sampled = {pid for _, _, pid in picked}
            for j, (model, hps) in enumerate(default_pipelines(space)):
                run_id, pid = resolve(d.path, model, hps)
                if pid not in sampled:
                    runs.append(RunSpec(run_id, d.path, d.name, model, hps, pid, int(seed), j, is_default=True))
    # round-robin over datasets (the default pipelines first, then every dataset's first sampled pipeline, every
    # second one, ...), so that a sweep stopped early, or a store read while it runs, covers every dataset evenly
    order = {d.name: k for k, d in enumerate(datasets)}
    runs.sort(key=lambda r: (not r.is_default, r.index, order[r.dataset_name]))
    done = frozenset(complete)
    return Plan(tuple(runs), frozenset(r.run_id for r in runs if r.run_id in done))


def chunk(runs: Sequence[RunSpec], size: int) -> list[tuple[RunSpec, ...]]:
    """Consecutive groups of at most ``size`` runs (one group per SLURM array task)."""
    if size < 1:
        raise ValueError(f"chunk size {size} must be at least 1")
    return [tuple(runs[i : i + size]) for i in range(0, len(runs), size)]


def deal(runs: Sequence[RunSpec], n: int) -> list[tuple[RunSpec, ...]]:
    """``runs`` dealt round-robin into at most ``n`` non-empty groups (balanced local processes)."""
    if n < 1:
        raise ValueError(f"number of groups {n} must be at least 1")
    groups = [tuple(runs[i::n]) for i in range(min(n, len(runs)))]
    return [g for g in groups if g]


def resolve_dataset_paths(paths: Sequence[str]) -> list[Path]:
    """Dataset folders from the config's list: a folder with ``labels.csv`` is a dataset; any other
    folder is a suite whose subfolders with ``labels.csv`` are datasets (sorted by name).

    Raises:
        SweepConfigError: a path does not exist, or is neither a dataset nor a suite of datasets
            (all bad paths named at once).
    """
    out: list[Path] = []
    problems: list[str] = []
    for raw in paths:
        p = Path(str(raw)).expanduser().resolve()
        if not p.exists():
            problems.append(f"dataset path {raw!r} does not exist ({p})")
        elif (p / "labels.csv").is_file():
            out.append(p)
        elif p.is_dir() and (members := sorted(c for c in p.iterdir() if (c / "labels.csv").is_file())):
            out.extend(members)
        else:
            problems.append(
                f"{raw!r} is neither a Meta-Album dataset (no labels.csv in {p}) nor a suite folder whose "
                "subfolders are datasets"
            )
    if problems:
        raise SweepConfigError("bad datasets:\n  " + "\n  ".join(problems))
    return list(dict.fromkeys(out))  # each once, in order
