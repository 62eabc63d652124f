"""A live tuning session: a benchmark optimizer's asks served by real finetuning (``python -m metagen.tune``).

The same ask/tell protocol as the replay (:mod:`benchmark.protocol`), another world: ``Ask(i, b)`` trains
candidate ``i`` from its checkpoint up to epoch ``b`` in a worker (freeze-thaw, see
:mod:`metagen.tune.worker`); asking for ``b`` at or below the highest trained epoch is a free lookup.
``on_epoch`` is called for each epoch of a step when the step returns, then ``tell``.

* **Before training**, everything is checked (:func:`prepare`): the method, the dataset, the meta_store
  and its search space, the store, weights of every candidate model, and that the budget holds at least
  one epoch of the cheapest model (the meta_store's median epoch times).
* **Budget**: wall-clock seconds of the session (measured, summed over relaunches; no ask is made once
  spent, and steps in flight are stopped at their next batch) or trained epochs (a step is cut so that
  the total never passes the budget).
* **Resume**: killed and relaunched with the same settings, a session rebuilds its optimizer by replaying
  the journal into a fresh one with the same seed: every ``ask()`` call and every ``tell`` in their order,
  each ask checked against the recorded one, accuracies and costs read back from the store and the
  checkpoints. One mechanism for every method: its ask-side state (ASHA's rungs, Hyperband's brackets,
  random draws, surrogate fits) is rebuilt by its own code, so its decisions after the resume are those of an
  uninterrupted session. The steps in flight at the kill start again from their checkpoints (a step that had
  reached its epoch trains nothing), so no epoch is trained twice.
* **End**: pipelines short of their budget are written to the store as ``timeout`` with their curves;
  the report, the journal's ``finish`` line and the plot go to the output folder.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.protocol import Ask, EpochResult, MetaContext, Optimizer, SearchView
from benchmark.registry import METHODS, UnknownMethodError, make_optimizer, spec
from benchmark.results import store_hash
from metagen.tune.config import Budget, TuneConfig, TuneConfigError, _fmt_seconds
from metagen.tune.journal import Journal
from metagen.tune.space import Candidate, MetaStoreInfo, inspect_meta_store, sample_candidates, search_view
from metagen.tune.worker import EpochRow, StepOutcome
from metagen.tune.world import World

MAX_LOOKUPS_IN_ROW = 10_000
_QT = "benchmark.methods.quicktune:make_quicktune"
_GP = ("benchmark.methods.quicktune:make_quicktune", "benchmark.methods.dyhpo:DyHPO")


@dataclass
class Prepared:
    """A checked session: what it trains and how."""

    cfg: TuneConfig
    budget: Budget
    info: MetaStoreInfo
    dataset: str
    dataset_name: str
    version: str
    epochs: int
    candidates: list[Candidate]
    view: SearchView
    out: Path
    store: str
    checkpoint_dir: str
    finetune: list[dict[str, Any]]  # FinetuneConfig fields per candidate
    context: MetaContext | None


def _refuse(msg: str) -> TuneConfigError:
    return TuneConfigError(msg)


def prepare(cfg: TuneConfig) -> Prepared:
    """Checks everything that can be checked before training (see the module doc); trains nothing.

    Raises:
        TuneConfigError: a setting is refused (the message names it and what to do).
    """
    cfg.check()
    budget = cfg.parsed_budget
    if cfg.cluster == "slurm":
        _check_slurm(cfg)
    try:
        spec(cfg.method)
    except UnknownMethodError as e:
        raise _refuse(f"method={cfg.method!r} is not registered; registered methods: {sorted(METHODS)}") from e
    dataset = Path(cfg.dataset).expanduser()
    if not (dataset / "labels.csv").is_file():
        raise _refuse(f"dataset={cfg.dataset}: no Meta-Album dataset there ({dataset.resolve()} has no labels.csv); "
                      "make one with `python -m metagen.datasets make KIND OUT`")  # fmt: skip
    from metagen.datasets import DatasetError, load_dataset

    try:
        ds = load_dataset(dataset)
        fingerprint = ds.fingerprint()
        meta = ds.meta_features(ds.split())
    except DatasetError as e:
        raise _refuse(f"dataset={cfg.dataset} is not usable: {e}") from e
    info = inspect_meta_store(cfg.meta_store, cfg.meta_version, cfg.search_space)
    epochs = int(cfg.epochs or info.max_epochs)
    if budget.kind == "s" and budget.amount < info.cheapest_epoch_s:
        raise _refuse(
            f"budget={cfg.budget} is shorter than one epoch: the cheapest model of meta_store={cfg.meta_store} "
            f"takes {info.cheapest_epoch_s:.2f} s per epoch (median); give a larger budget"
        )
    s = spec(cfg.method)
    if s.target == _QT and info.max_epochs < epochs:
        raise _refuse(f"epochs={epochs} exceeds the meta_store's curves ({info.max_epochs} epochs) that "
                      f"{cfg.method} meta-trains on; use epochs<={info.max_epochs}")  # fmt: skip
    version = cfg.version or info.version
    store = Path(cfg.store).expanduser().resolve()
    _ensure_store(store)
    from metagen.finetune.store_io import check_dataset_content

    try:
        check_dataset_content(store, version, ds.name, fingerprint, dataset)
    except ValueError as e:
        raise _refuse(str(e)) from e
    checkpoint_dir = str(
        Path(cfg.checkpoint_dir).resolve() if cfg.checkpoint_dir else store.with_name(store.name + ".checkpoints")
    )
    from metagen.search_space import SearchSpace

    space = SearchSpace.load(info.space).restrict(models=list(info.models))
    base = {
        "dataset": str(dataset.resolve()), "store": str(store), "version": version, "epochs": epochs,
        "schedule_epochs": int(cfg.schedule_epochs or info.schedule_epochs), "cap_s": None, "seed": int(cfg.seed),
        "search_space": info.space, "hub_dir": cfg.hub_dir, "img_size": cfg.img_size or info.img_size,
        "device": cfg.device, "clock": cfg.clock, "num_threads": cfg.num_threads, "checkpoint_dir": checkpoint_dir,
        "keep_checkpoint": True,
    }  # fmt: skip

    def pretrained(model: str) -> str:
        if cfg.pretrained == "match":
            return "none" if model in info.random_init else "auto"
        return cfg.pretrained

    resolve = _resolver(base, pretrained, ds.name)
    no_source = frozenset(m for m in info.models if pretrained(m) == "none")
    candidates = sample_candidates(space, cfg.candidates, cfg.seed, ds.name, resolve, no_source)
    _check_weights({c.model for c in candidates}, pretrained, cfg.hub_dir)
    view = search_view(candidates, ds.name, version, epochs, meta, list(space.model(m).name for m in info.models))
    train = [d for d in info.datasets if d != ds.name]
    context = None
    if len(train) >= 1:
        rng = np.random.default_rng(42)  # one split per meta_store (not per session seed): one cached meta-training
        n_valid = len(train) // 5 if len(train) >= 3 else 0
        valid = sorted(rng.choice(train, size=n_valid, replace=False).tolist()) if n_valid else []
        context = MetaContext(info.path, info.version, tuple(d for d in train if d not in valid), tuple(valid), 0,
                              cfg.cache_dir)  # fmt: skip
    if s.needs_context and context is None:
        raise _refuse(f"method={cfg.method} meta-learns, but meta_store={cfg.meta_store} has no other dataset")
    finetune = [{**base, "model": c.model, "hp": dict(c.hp), "pretrained": pretrained(c.model)} for c in candidates]
    return Prepared(cfg, budget, info, str(dataset.resolve()), ds.name, version, epochs, candidates, view,
                    cfg.out_dir(ds.name), str(store), checkpoint_dir, finetune, context)  # fmt: skip


def _check_slurm(cfg: TuneConfig) -> None:
    """SLURM answers and a step's job fits the partition (as ``sinfo`` reports it; unchecked if it fails)."""
    from metagen.sweep.slurm_info import missing_slurm_commands, query_partitions
    from metagen.tune.world import SLURM_MEM_GB

    if missing := missing_slurm_commands():
        raise _refuse(f"cluster=slurm, but {'/'.join(missing)} not on the PATH: run the session on a SLURM "
                      "login node (the jobs need the store, checkpoints and out= on a shared filesystem), or "
                      "use cluster=local")  # fmt: skip
    try:
        partitions, default = query_partitions()
    except Exception:  # sinfo failing or restricted: sbatch still validates each job
        return
    name = cfg.slurm_partition or default
    if name not in partitions:
        raise _refuse(f"slurm_partition={name!r} is not a partition of this cluster: {sorted(partitions)}")
    part = partitions[name]
    problems = []
    if cfg.slurm_cpus > part.max_cpus:
        problems.append(f"slurm_cpus={cfg.slurm_cpus}, but its nodes have at most {part.max_cpus} CPUs")
    if part.max_time_min is not None and cfg.slurm_time_min > part.max_time_min:
        problems.append(f"slurm_time_min={cfg.slurm_time_min}, but it allows at most {part.max_time_min} min")
    if part.max_mem_mb < SLURM_MEM_GB * 1024:
        problems.append(f"a step's job asks {SLURM_MEM_GB:g} GB, but its nodes have {part.max_mem_mb / 1024:.1f} GB")
    if problems:
        raise _refuse(f"a step's SLURM job does not fit partition {name!r}: " + "; ".join(problems))


def _ensure_store(store: Path) -> None:
    from metagen.store import StoreMetadata, create_store

    if (store / "store.json").is_file():
        return
    if store.exists() and any(store.iterdir()):
        raise _refuse(f"store={store} exists but is not a learning-curve store (no store.json); choose another")
    create_store(store, StoreMetadata(name=store.name, description="runs of metagen.tune sessions"))


def _resolver(base: dict[str, Any], pretrained: Callable[[str], str], name: str) -> Callable[..., tuple[str, str]]:
    """``(model, hp) -> (run id, pipeline id)`` by the runner's rules (extras resolved once per model)."""
    from metagen.finetune import FinetuneConfig, FinetuneConfigError, resolve_pipeline, run_id_of
    from metagen.store.schema import make_run_id, pipeline_id

    extras: dict[str, tuple[str, dict[str, Any]]] = {}

    def resolve(model: str, hp: dict[str, Any]) -> tuple[str, str]:
        fcfg = FinetuneConfig(**{**base, "model": model, "hp": dict(hp), "pretrained": pretrained(model)})
        first = model not in extras
        if first:
            try:
                canonical, full = resolve_pipeline(fcfg)
            except FinetuneConfigError as e:
                raise _refuse(f"the runner rejects a sampled pipeline ({model}): {e}") from e
            extras[model] = (canonical, {k: v for k, v in full.items() if k not in hp})
        canonical, extra = extras[model]
        pid = pipeline_id(canonical, {**hp, **extra})
        run_id = make_run_id(base["version"], name, pid, base["seed"])
        if first and run_id != run_id_of(fcfg):
            raise RuntimeError(f"run id mismatch for {model}: the session and metagen.finetune disagree (a bug)")
        return run_id, pid

    return resolve


def _check_weights(models: set[str], pretrained: Callable[[str], str], hub_dir: str | None) -> None:
    from metagen.finetune.errors import WeightsUnavailableError
    from metagen.finetune.models import resolve_weights

    for m in sorted(models):
        try:
            resolve_weights(m, pretrained(m), None, hub_dir)
        except WeightsUnavailableError as e:
            raise _refuse(f"candidate model {m}: {e}") from e


# ---- the session -----------------------------------------------------------------------------------------


@dataclass
class Trace:
    """Every epoch the session observed, in order (times in session seconds)."""

    time: list[float] = field(default_factory=list)
    pipeline: list[int] = field(default_factory=list)
    epoch: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)

    def add(self, t_end: float, i: int, rows: list[EpochRow]) -> None:
        """Adds a step's epochs; the step ended at ``t_end``, earlier epochs are placed by their costs."""
        later = 0.0
        times = []
        for r in reversed(rows):
            times.append(t_end - later)
            later += r.cost
        for r, t in zip(rows, reversed(times), strict=True):
            self.time.append(float(t))
            self.pipeline.append(int(i))
            self.epoch.append(int(r.epoch))
            self.value.append(float(r.value))
            self.cost.append(float(r.cost))

    def incumbent(self) -> tuple[int, int, float] | None:
        """``(pipeline, epoch, accuracy)`` of the best non-diverged epoch so far."""
        v = np.asarray(self.value, dtype=np.float64)
        if not np.isfinite(v).any():
            return None
        k = int(np.nanargmax(v))
        return self.pipeline[k], self.epoch[k], float(v[k])


@dataclass
class SessionResult:
    """What a session did (also written as ``report.json``)."""

    prepared: Prepared
    trace: Trace
    time_used: float
    stop: str
    steps: int
    report_dir: Path


class _Clock:
    def __init__(self, offset: float):
        self.offset, self.t0 = offset, time.monotonic()

    def now(self) -> float:
        return self.offset + time.monotonic() - self.t0


@contextmanager
def _session_lock(out: Path) -> Iterator[None]:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _refuse(f"another session runs in out={out}; wait for it or choose another out=") from None
        yield


def _start_entry(p: Prepared) -> dict[str, Any]:
    c = p.cfg
    return {"dataset": p.dataset_name, "method": c.method, "seed": c.seed, "version": p.version, "epochs": p.epochs,
            "store": p.store, "meta_store": str(Path(c.meta_store).resolve()),
            "meta_store_hash": store_hash(c.meta_store),
            "run_ids": [x.run_id for x in p.candidates], "budget": c.budget}  # fmt: skip


def _check_same_session(p: Prepared, start: dict[str, Any]) -> None:
    now = _start_entry(p)
    if "meta_store_hash" in start and start["meta_store_hash"] != now["meta_store_hash"]:
        raise _refuse(
            f"out={p.out} holds a session started on other contents of meta_store={p.cfg.meta_store} (content hash "
            f"{start['meta_store_hash'][:12]} then, {now['meta_store_hash'][:12]} now): the method's surrogates and "
            "candidates depend on it, so the session cannot be resumed. Restore the meta_store, or tune again into "
            "another out= and store= (the trained epochs stay in the store)"
        )
    diff = [k for k in now if k not in ("budget", "meta_store_hash") and start.get(k) != now[k]]
    if diff:
        detail = ", ".join(f"{k}: {start.get(k)!r} -> {now[k]!r}" for k in diff if k != "run_ids")
        raise _refuse(
            f"out={p.out} holds a session with other settings ({detail or 'other candidates'}); relaunch with the "
            "same settings to resume it, or choose another out="
        )


def build_optimizer(p: Prepared, progress: bool = False) -> Optimizer:
    """The method's optimizer on the candidates; Quick-Tune's surrogates meta-trained on the meta_store
    (or loaded from ``cache_dir``, keyed by the meta_store's content)."""
    s = spec(p.cfg.method)
    options: dict[str, Any] = {}
    if s.target in _GP and p.cfg.schedule is not None:
        options["schedule"] = p.cfg.schedule
    if s.target == _QT and s.options.get("meta_learn", True):
        from surrogates.metatrain import MetaTrainConfig, load_or_meta_train

        assert p.context is not None
        config = MetaTrainConfig(iterations=int(p.cfg.meta_iterations))
        c = p.context
        options["meta_model"] = load_or_meta_train(c.store, c.version, c.train_datasets, c.valid_datasets, c.fold,
                                                   c.cache_dir, config, progress)  # fmt: skip
        options["meta_config"] = config
    return make_optimizer(p.cfg.method, p.view, int(p.cfg.seed), p.context, **options)


class ResumeError(TuneConfigError):
    """A relaunched session whose optimizer cannot be rebuilt from its journal (nothing is trained)."""


def run_session(
    cfg: TuneConfig,
    log: Callable[[str], None] = print,
    prepared: Prepared | None = None,
    world: World | None = None,
) -> SessionResult:
    """Runs (or resumes, or only reports a finished) tuning session; see the module doc.

    ``world``: where the steps run (default: local workers or SLURM jobs, by ``cfg.cluster``); the session
    closes it.
    """
    p = prepared or prepare(cfg)
    with _session_lock(p.out):
        journal = Journal(p.out / "journal.jsonl")
        if journal.start is None:
            journal.append("start", **_start_entry(p))
        else:
            _check_same_session(p, journal.start)
        if journal.finished is not None:
            log(f"[tune] session in {p.out} already finished ({journal.finished.get('stop')}); reporting it. "
                "Choose another out= (and store=) to tune again")  # fmt: skip
            return _finish(p, journal, _trace_from_journal(p, journal), journal.time_used(), "finished", log, False)
        if journal.of("step") and not journal.of("ask"):
            raise ResumeError(f"out={p.out} holds a session journaled by an older metagen.tune (no ask lines), which "
                              "cannot be resumed; its trained epochs are in the store and checkpoints: tune again "
                              "into another out= and store=")  # fmt: skip
        log(f"[tune] {p.dataset_name}: {len(p.candidates)} candidates of search space {p.info.space}, "
            f"{p.epochs} epochs each; method {cfg.method}, budget {p.budget}, "
            f"{cfg.workers} {cfg.cluster} worker(s)")  # fmt: skip
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the surrogate's tiny GEMMs; OpenMP teams stall when workers share the cores
        try:
            optimizer = build_optimizer(p, progress=False)
            return _Loop(p, journal, optimizer, log, world or _make_world(p)).run()
        finally:
            torch.set_num_threads(threads)


def _make_world(p: Prepared) -> World:
    cfg = p.cfg
    if cfg.cluster == "slurm":
        from metagen.tune.world import SlurmWorld

        return SlurmWorld(p.out / "slurm", cfg.slurm_partition, cfg.slurm_time_min, cfg.slurm_cpus,
                          slurm_job_name(p))  # fmt: skip
    from metagen.tune.world import LocalWorld

    return LocalWorld(cfg.workers)


def slurm_job_name(p: Prepared) -> str:
    """The name of a session's SLURM jobs: its dataset and a hash of its output folder (one session's only)."""
    return f"metagen-tune-{p.dataset_name}-{hashlib.sha256(str(p.out.resolve()).encode()).hexdigest()[:8]}"


def step_spec(p: Prepared, i: int, target: int, stop_file: str | None, relaunched: bool = False) -> dict[str, Any]:
    """What a world needs to train candidate ``i`` up to epoch ``target`` (see :func:`metagen.tune.worker.run_step`)."""
    c = p.candidates[i]
    return {"finetune": p.finetune[i], "target": int(target), "run_id": c.run_id, "dataset_name": p.dataset_name,
            "stop_file": stop_file, "relaunched": relaunched}  # fmt: skip


@dataclass(frozen=True)
class _Step:
    """A training step the optimizer asked for: candidate ``ask.pipeline`` from epoch ``start`` to ``target``
    (``target`` < ``ask.epoch`` when an epoch budget cut it)."""

    ask: Ask
    start: int
    target: int


class _Loop:
    """The ask/tell loop of one launch.

    Every ``ask()`` call that does not end in a lookup is journaled (``ask`` line, ``pipeline: null`` for a
    ``None``) before its step starts, and every told step (``step`` line) after it returned; on a relaunch,
    :meth:`replay` repeats those calls on a fresh optimizer with the same seed, so that every method's
    ask-side state (rungs, brackets, draws, surrogate fits) is rebuilt by its own code.
    """

    def __init__(self, p: Prepared, journal: Journal, optimizer: Optimizer, log: Callable[[str], None], world: World):
        self.p, self.journal, self.opt, self.log, self.world = p, journal, optimizer, log, world
        n, E = p.view.n, p.epochs
        self.curves = np.full((n, E), np.nan)
        self.highest = np.zeros(n, dtype=np.int64)
        self.ended = np.zeros(n, dtype=bool)
        self.trace = Trace()
        self.clock = _Clock(journal.time_used())
        self.steps = len(journal.of("step"))
        self.trained = 0
        self.reserved = 0  # epochs of steps in flight (epoch budgets)
        self.busy: dict[int, _Step] = {}  # pipeline -> its step in flight, in the order they were asked
        self.waiting = False  # the last ask was None: ask again only after the next tell
        self.stop_file = p.out / "STOP"
        self.stop_file.unlink(missing_ok=True)

    # ---- asking and telling --------------------------------------------------------------------------

    def _ask(self) -> Ask | None:
        """The optimizer's next training ask, or ``None``; lookups (epochs already trained) are answered here."""
        for _ in range(MAX_LOOKUPS_IN_ROW + 1):
            ask = self.opt.ask()
            if ask is None:
                return None
            i, e = self._check(ask)
            if e > self.highest[i]:
                return ask
            r = EpochResult(i, e, float(self.curves[i, e - 1]), 0.0, bool(self.ended[i] and e == self.highest[i]))
            self.opt.on_epoch(r)
            self.opt.tell(ask, [r])
        raise RuntimeError(f"{self.p.cfg.method} asked {MAX_LOOKUPS_IN_ROW} lookups in a row; it is stuck")

    def _plan(self, ask: Ask) -> _Step:
        """The step of a training ask (an epoch budget cuts it so that the total never passes the budget)."""
        start = int(self.highest[ask.pipeline])
        target = ask.epoch
        if self.p.budget.kind == "ep":
            target = min(target, start + int(self._budget_left() - self.reserved))
        return _Step(ask, start, target)

    def _begin(self, step: _Step) -> None:
        self.busy[step.ask.pipeline] = step
        if self.p.budget.kind == "ep":
            self.reserved += step.target - step.start

    def _end(self, i: int) -> _Step:
        step = self.busy.pop(i)
        if self.p.budget.kind == "ep":
            self.reserved -= step.target - step.start
        return step

    def _tell(self, ask: Ask, i: int, rows: list[EpochRow], status: str | None, error: str | None) -> list[int]:
        E = self.p.epochs
        new = [r for r in rows if r.epoch > self.highest[i]]
        results = []
        for k, r in enumerate(new):
            last = r.epoch >= E or (status is not None and k == len(new) - 1)
            results.append(EpochResult(i, r.epoch, r.value, r.cost, bool(last)))
        if not results and (error or status is not None):  # nothing trained and nothing more to train
            results.append(EpochResult(i, int(self.highest[i]) + 1, math.nan, 0.0, True))
        for res in results:
            self.opt.on_epoch(res)
        self.opt.tell(ask, results)
        for r in new:
            self.curves[i, r.epoch - 1] = r.value
        if new:
            self.highest[i] = new[-1].epoch
        if any(r.last for r in results):
            self.ended[i] = True
        self.trained += len(new)
        return [r.epoch for r in new]

    def replay(self) -> list[_Step]:
        """Rebuilds a fresh optimizer by repeating the journaled asks and tells in their order (values and
        costs read back from the store and the checkpoints); returns the steps that were in flight at the
        kill, in the order they were asked.

        Raises:
            ResumeError: the optimizer asks something else than the journal recorded.
        """
        asks = 0
        cache: dict[int, tuple[str | None, list[EpochRow]]] = {}
        for entry in self.journal.entries:
            kind = entry.get("kind")
            if kind == "ask":
                asks += 1
                ask = self._ask()
                got = None if ask is None else (ask.pipeline, ask.epoch)
                want = None if entry["pipeline"] is None else (int(entry["pipeline"]), int(entry["epoch"]))
                if got != want:
                    raise ResumeError(
                        f"out={self.p.out}: replaying the journal, {self.p.cfg.method} asked {got} (pipeline, epoch) "
                        f"where the session had asked {want} (ask {asks}); the method's code or the candidates "
                        "changed since the session started. Its trained epochs are in the store and checkpoints: "
                        "tune again into another out= and store="
                    )
                self.waiting = ask is None
                if ask is not None:
                    self._begin(_Step(ask, int(entry["start"]), int(entry["target"])))
            elif kind == "step":
                i = int(entry["pipeline"])
                if i not in self.busy:
                    raise ResumeError(f"out={self.p.out}: the journal tells a step of pipeline {i} that was never "
                                      "asked (a damaged journal); tune again into another out= and store=")  # fmt: skip
                step = self._end(i)
                if i not in cache:
                    cache[i] = self.world.epochs(step_spec(self.p, i, 0, None))
                upto = max(entry["epochs"], default=0)
                rows = [r for r in cache[i][1] if r.epoch <= upto]
                self._tell(step.ask, i, rows, entry["status"], entry.get("error"))
                self.trace.add(float(entry["t"]), i, [r for r in rows if r.epoch in set(entry["epochs"])])
                self.waiting = False
        return list(self.busy.values())

    # ---- the loop ------------------------------------------------------------------------------------

    def _budget_left(self) -> float:
        b = self.p.budget
        return b.amount - (self.clock.now() if b.kind == "s" else self.trained)

    def progress(self, in_flight: int) -> None:
        """One progress line (and a clock line in the journal)."""
        t = self.clock.now()
        inc = self.trace.incumbent()
        b = self.p.budget
        used = f"{_fmt_seconds(t)} / {b}" if b.kind == "s" else f"{self.trained} / {b} ({_fmt_seconds(t)})"
        best = "none yet" if inc is None else (
            f"#{inc[0]} {self.p.candidates[inc[0]].model} acc {inc[2]:.4f} (epoch {inc[1]})")  # fmt: skip
        self.log(f"[tune] {used} used | epochs {self.trained} | steps {self.steps} | in flight {in_flight} | "
                 f"incumbent {best}")  # fmt: skip
        self.journal.append("clock", t=t)

    def _start(self, step: _Step, relaunched: bool = False) -> tuple[Any, int]:
        i = step.ask.pipeline
        return self.world.step(step_spec(self.p, i, step.target, str(self.stop_file), relaunched)), i

    def run(self) -> SessionResult:
        p, cfg, world = self.p, self.p.cfg, self.world
        stop = ""
        try:
            in_flight: dict[Any, int] = {}  # handle -> pipeline
            cancelled = getattr(world, "cancelled", [])
            if cancelled:
                self.log(f"[tune] cancelled {len(cancelled)} SLURM job(s) of the killed launch: {', '.join(cancelled)}")
            if self.journal.of("ask"):
                t0 = time.monotonic()
                relaunch = self.replay()
                for step in relaunch:
                    handle, i = self._start(step, relaunched=True)
                    in_flight[handle] = i
                self.log(f"[tune] resumed: {len(self.journal.of('ask'))} asks replayed to a fresh {cfg.method} in "
                         f"{time.monotonic() - t0:.1f} s; {self.trained} epochs of {int((self.highest > 0).sum())} "
                         f"pipelines told, {len(relaunch)} step(s) in flight at the kill started again; "
                         f"{_fmt_seconds(self.clock.offset)} used before")  # fmt: skip
            last_progress = time.monotonic()
            while True:
                while len(in_flight) < cfg.workers and not self.waiting and not stop:
                    if self._budget_left() - self.reserved <= 0:
                        stop = "budget"
                        break
                    ask = self._ask()
                    if ask is None:
                        self.journal.append("ask", pipeline=None)
                        self.waiting = True
                        if not in_flight:
                            stop = "exhausted"
                        break
                    step = self._plan(ask)
                    self.journal.append("ask", pipeline=ask.pipeline, epoch=ask.epoch, start=step.start,
                                        target=step.target)  # fmt: skip
                    self._begin(step)
                    handle, i = self._start(step)
                    in_flight[handle] = i
                if not in_flight:
                    break
                timeout = min(cfg.progress_s, max(self._budget_left(), 0.5)) if p.budget.kind == "s" else cfg.progress_s
                done = world.wait(list(in_flight), timeout)
                if p.budget.kind == "s" and self._budget_left() <= 0 and not self.stop_file.exists():
                    self.stop_file.touch()  # steps in flight stop at their next batch (their checkpoints stay)
                    stop = "budget"
                for h in done:
                    i = in_flight.pop(h)
                    step = self._end(i)
                    out: StepOutcome = world.result(h)
                    if out.error:
                        self.log(f"[tune] pipeline #{i} ({p.candidates[i].model}) failed: {out.error.splitlines()[0]}")
                    epochs = self._tell(step.ask, i, out.epochs, out.status, out.error)
                    t = self.clock.now()
                    self.trace.add(t, i, [r for r in out.epochs if r.epoch in set(epochs)])
                    self.steps += 1
                    self.journal.append("step", pipeline=i, ask=step.ask.epoch, epochs=epochs, t=t, status=out.status,
                                        error=out.error)  # fmt: skip
                    self.waiting = False
                if done or time.monotonic() - last_progress >= cfg.progress_s:
                    self.progress(len(in_flight))
                    last_progress = time.monotonic()
            stop = stop or "exhausted"
            self._close_runs(stop)
        finally:
            world.close()
        return _finish(p, self.journal, self.trace, self.clock.now(), stop, self.log, True)

    def _check(self, ask: object) -> tuple[int, int]:
        if not isinstance(ask, Ask):
            raise RuntimeError(f"ask() must return an Ask or None, got {ask!r}")
        i, e = int(ask.pipeline), int(ask.epoch)
        if not 0 <= i < self.p.view.n or not 1 <= e <= self.p.epochs:
            raise RuntimeError(f"{self.p.cfg.method} asked pipeline {i} epoch {e}, outside the candidates/epochs")
        if i in self.busy:
            raise RuntimeError(f"{self.p.cfg.method} asked pipeline {i}, which a worker is training")
        if self.ended[i] and e > self.highest[i]:
            raise RuntimeError(f"{self.p.cfg.method} asked pipeline {i} beyond its end (epoch {self.highest[i]})")
        return i, e

    def _close_runs(self, stop: str) -> None:
        """Writes every pipeline short of its budget into the store (``timeout``, curve kept)."""
        todo = [i for i in range(self.p.view.n) if self.highest[i] > 0 and not self.ended[i]]
        handles = []
        for i in todo:
            reason = (f"metagen.tune session ended ({stop}) after {self.highest[i]} of {self.p.epochs} epochs of this "
                      "pipeline; the curve is complete up to there")  # fmt: skip
            handles.append(self.world.finish(step_spec(self.p, i, int(self.highest[i]), None), reason))
        for h in handles:
            self.world.result(h)
        if todo:
            self.log(f"[tune] wrote {len(todo)} unfinished pipeline(s) to the store as timeout with their curves")


def _trace_from_journal(p: Prepared, journal: Journal) -> Trace:
    from metagen.tune.worker import current_epochs

    trace = Trace()
    for st in journal.of("step"):
        i = int(st["pipeline"])
        _, rows = current_epochs(step_spec(p, i, 0, None))
        trace.add(float(st["t"]), i, [r for r in rows if r.epoch in set(st["epochs"])])
    return trace


def _finish(
    p: Prepared, journal: Journal, trace: Trace, used: float, stop: str, log: Callable[[str], None], write: bool
) -> SessionResult:
    from metagen.tune.report import write_report

    if write:
        journal.append("finish", t=used, stop=stop)
    result = SessionResult(p, trace, used, stop, len(journal.of("step")), p.out)
    for line in write_report(result):
        log(line)
    return result
