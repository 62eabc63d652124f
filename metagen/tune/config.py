"""The tuning session's settings: ``key=value`` arguments of ``python -m metagen.tune`` and the budget.

Imports neither torch nor timm.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints


class TuneConfigError(ValueError):
    """A setting of the tuning session is invalid (named in the message, with what to do)."""


@dataclass(frozen=True)
class Budget:
    """A session budget: wall-clock seconds (``kind="s"``) or trained epochs (``kind="ep"``)."""

    kind: str
    amount: float

    def __str__(self) -> str:
        return f"{int(self.amount)}ep" if self.kind == "ep" else _fmt_seconds(self.amount)


_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_budget(text: str) -> Budget:
    """``2h``, ``90m``, ``600s`` (wall-clock) or ``30ep`` (epochs) as a :class:`Budget`."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|m|min|h|ep)\s*", str(text))
    if not m:
        raise TuneConfigError(f"budget={text!r} is not a budget; write e.g. budget=2h, budget=600s or budget=30ep")
    value, unit = float(m.group(1)), m.group(2)
    if unit == "ep":
        if value < 1 or value != int(value):
            raise TuneConfigError(f"budget={text!r}: an epoch budget is a whole number of epochs >= 1")
        return Budget("ep", float(int(value)))
    if value <= 0:
        raise TuneConfigError(f"budget={text!r} must be positive")
    return Budget("s", value * _UNITS[unit])


def _fmt_seconds(s: float) -> str:
    s = round(s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


@dataclass(frozen=True)
class TuneConfig:
    """One tuning session of a new dataset.

    Attributes:
        dataset: folder of the new Meta-Album-layout dataset.
        store: learning-curve store every trained epoch is written into (created if missing).
        meta_store: the store Quick-Tune meta-trains on (its candidates come from the same search space).
        budget: ``2h`` / ``600s`` / ``30ep`` (see :func:`parse_budget`).
        method: a registered benchmark method (``benchmark.registry.METHODS``).
        workers: asynchronous training processes (or SLURM jobs at a time).
        cluster: ``local`` (worker processes) or ``slurm`` (one submitit job per step).
        seed: seed of the candidate sample, the optimizer and every run.
        candidates: pipelines sampled from the search space (the optimizer's candidate set).
        search_space: the space of ``meta_store`` (``None`` = inferred from its models).
        meta_version: version of ``meta_store`` to meta-train on (``None`` = its only version).
        version: version the session's runs are written under (``None`` = ``meta_version``).
        epochs: epoch budget per pipeline (``None`` = the meta_store's longest curve).
        schedule_epochs: LR schedule length (``None`` = the meta_store's).
        img_size: input resolution (``None`` = the meta_store's).
        pretrained: ``match`` (random init where the meta_store's runs of that model were, else ``auto``),
            or a ``metagen.finetune`` value (auto, hub, none).
        hub_dir: local hub of pretrained cards (``metagen.hub``).
        device, clock, num_threads: per-run settings of ``metagen.finetune``.
        out: output folder (journal, report, plot); ``None`` = ``out/tune/<dataset>-<method>-s<seed>``.
        checkpoint_dir: checkpoints of the session's runs (``None`` = ``<store>.checkpoints``).
        cache_dir: cache of meta-trained surrogates (keyed by the meta_store's content).
        meta_iterations: meta-training steps of Quick-Tune's surrogates.
        schedule: refit schedule of the GP methods (``None`` = the method's own, ``reference``).
        progress_s: seconds between progress lines while nothing finishes.
        slurm_partition, slurm_time_min, slurm_cpus: SLURM job settings (cluster=slurm).
    """

    dataset: str = "???"
    store: str = "???"
    meta_store: str = "???"
    budget: str = "???"
    method: str = "quicktune"
    workers: int = 1
    cluster: str = "local"
    seed: int = 0
    candidates: int = 40
    search_space: str | None = None
    meta_version: str | None = None
    version: str | None = None
    epochs: int | None = None
    schedule_epochs: int | None = None
    img_size: int | None = None
    pretrained: str = "match"
    hub_dir: str | None = None
    device: str = "cpu"
    clock: str = "process"
    num_threads: int | None = 1
    out: str | None = None
    checkpoint_dir: str | None = None
    cache_dir: str = "out/tune-cache"
    meta_iterations: int = 2000
    schedule: str | None = None
    progress_s: float = 30.0
    slurm_partition: str | None = None
    slurm_time_min: int = 60
    slurm_cpus: int = 1

    @property
    def parsed_budget(self) -> Budget:
        """The budget, parsed."""
        return parse_budget(self.budget)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    def check(self) -> None:
        """Cheap checks of single settings (the session checks the rest before training)."""
        missing = [f.name for f in fields(self) if getattr(self, f.name) == "???"]
        if missing:
            raise TuneConfigError(
                f"missing required settings {missing}; usage: python -m metagen.tune dataset=PATH store=STORE "
                "meta_store=STORE budget=2h [method=quicktune] [workers=N] [cluster=local|slurm]"
            )
        self.parsed_budget  # noqa: B018  (raises on a bad budget)
        if self.workers < 1:
            raise TuneConfigError(f"workers={self.workers} must be at least 1")
        if self.cluster not in ("local", "slurm"):
            raise TuneConfigError(f"cluster={self.cluster!r}: choose local or slurm")
        if self.candidates < 1:
            raise TuneConfigError(f"candidates={self.candidates} must be at least 1")
        if self.epochs is not None and self.epochs < 1:
            raise TuneConfigError(f"epochs={self.epochs} must be at least 1")
        if self.clock not in ("wall", "process"):
            raise TuneConfigError(f"clock={self.clock!r}: choose wall or process")

    def out_dir(self, dataset_name: str) -> Path:
        """The session's output folder."""
        return Path(self.out or f"out/tune/{dataset_name}-{self.method}-s{self.seed}")


def parse_args(argv: list[str]) -> TuneConfig:
    """A :class:`TuneConfig` from ``key=value`` arguments (unknown keys and bad values are refused)."""
    hints = get_type_hints(TuneConfig)
    known = {f.name for f in fields(TuneConfig)}
    values: dict[str, Any] = {}
    for arg in argv:
        key, sep, raw = arg.partition("=")
        if not sep:
            raise TuneConfigError(f"argument {arg!r} is not key=value")
        if key not in known:
            raise TuneConfigError(f"unknown setting {key!r}; known: {sorted(known)}")
        values[key] = _coerce(key, raw, hints[key])
    return TuneConfig(**values)


def _coerce(key: str, raw: str, hint: Any) -> Any:
    args = set(getattr(hint, "__args__", ()) or (hint,))
    if type(None) in args and raw.lower() in ("null", "none", ""):
        return None
    try:
        if int in args:
            return int(raw)
        if float in args:
            return float(raw)
    except ValueError:
        raise TuneConfigError(f"{key}={raw!r} is not a number") from None
    return raw
