"""Peer BOHB: hpbandster 0.7.4 (Falkner et al., ICML 2018, the authors' implementation) replayed on a store's tasks.

Runs in its own venv (``benchmarks/peers/.venv``, made by ``run_peer_bohb.sh``) and writes
``OUT/version=<v>/method=bohb-hpbandster/dataset=<d>/seed=<s>.parquet`` in the benchmark's RESULTS layout, so
``python -m benchmark.figures`` compares it with our methods.

Same task as our replay:

* the candidates, curves, per-epoch costs and regret anchors (``best``, ``worst``) come from
  ``benchmark.task.load_tasks`` (read from this repository), or from the store directly while that module is
  missing (``StoreReader.curve_arrays`` + ``bounds``: best / worst accuracy of any epoch of any run);
* simulated time = recorded ``train_time + eval_time`` of every epoch trained, one sequential worker, no optimizer
  overhead charged (our ``overhead="none"``); an epoch that would end after the budget is not trained;
* freeze-thaw: hpbandster asks for a configuration at a budget (epochs); the nearest candidate is trained from its
  highest trained epoch up to that epoch, so only the new epochs are charged (checkpoint continuation);
* incumbent = best non-diverged accuracy of any trained epoch; regret normalised with the task's anchors.

As the Quick-Tune paper's BOHB baseline (reference §6.2): every encoded hyperparameter column becomes
``uniform(min, max)`` over the candidates, and a proposal is mapped to the nearest candidate (Euclidean, after
min-max scaling). hpbandster's budgets (``max_epochs * eta^-i``: 1.85, 5.56, 16.67, 50 for 50 epochs) are rounded
to whole epochs. hpbandster draws from numpy's global generator; it is seeded with the run's seed here because
the library offers no other way to make a run reproducible.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import Pyro4

# hpbandster hangs on numpy.str_ values with Pyro4's default serpent serializer (hpo-peers.md §2).
Pyro4.config.SERIALIZER = "pickle"
Pyro4.config.SERIALIZERS_ACCEPTED.add("pickle")

import ConfigSpace as CS  # noqa: E402
import hpbandster.core.nameserver as hpns  # noqa: E402
from hpbandster.core.worker import Worker  # noqa: E402
from hpbandster.optimizers import BOHB  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

METHOD = "bohb-hpbandster"
PAPER_BUDGETS_S = {"micro": 1.5 * 3600, "mini": 6 * 3600, "extended": 24 * 3600}


@dataclass
class PeerTask:
    """What the peer needs of one task: ``features (n, d)``, ``values``/``cost (n, E)``, ``n_epochs (n,)``."""

    dataset: str
    version: str
    features: np.ndarray
    feature_names: tuple[str, ...]
    values: np.ndarray
    cost: np.ndarray
    n_epochs: np.ndarray
    best: float
    worst: float
    source: str

    @property
    def max_epochs(self) -> int:
        return int(self.values.shape[1])


def load_peer_tasks(store: str, version: str, datasets: list[str] | None) -> list[PeerTask]:
    """Tasks through ``benchmark.task.load_tasks`` when it exists, else straight from the store."""
    try:
        from benchmark.task import load_tasks
    except ImportError:
        load_tasks = None
    if load_tasks is not None:
        tasks = load_tasks(store, version, datasets)
        return [
            PeerTask(
                t.view.name,
                version,
                np.asarray(t.view.features, dtype=np.float64),
                tuple(t.view.feature_names),
                np.asarray(t.values, dtype=np.float64),
                np.asarray(t.cost, dtype=np.float64),
                np.asarray(t.n_epochs, dtype=np.int64),
                float(t.best),
                float(t.worst),
                "benchmark.task.load_tasks",
            )
            for t in tasks
        ]
    from metagen.store.reader import StoreReader

    reader = StoreReader(store)
    bounds = reader.bounds(version)
    names = datasets or bounds["dataset"].to_list()
    enc_all = reader.encoded_hyperparameters(version)
    out = []
    for d in names:
        arr = reader.curve_arrays(d, version)
        enc = pl.DataFrame({"run_id": arr.run_ids}).join(enc_all, on="run_id", how="left", maintain_order="left")
        feats = enc.drop("run_id", "pipeline_id")
        b = bounds.filter(pl.col("dataset") == d)
        out.append(
            PeerTask(
                d,
                version,
                feats.to_numpy().astype(np.float64),
                tuple(feats.columns),
                arr.values,
                arr.cost,
                arr.n_epochs.astype(np.int64),
                float(b["best"][0]),
                float(b["worst"][0]),
                "metagen.store.StoreReader",
            )
        )
    return out


def regret_of(incumbent: float, best: float, worst: float) -> float:
    """Normalised regret clipped to [0, 1], as ``benchmark.task.Task.regret`` computes it."""
    span = best - worst
    r = (best - incumbent) / span if span > 0 else (0.0 if incumbent >= best else 1.0)
    return min(max(r, 0.0), 1.0)


def default_budget(version: str) -> float | None:
    """Our replay's default budget of a version (``benchmark.task.default_budget``), else the paper's."""
    try:
        from benchmark.task import default_budget as ours
    except ImportError:
        return PAPER_BUDGETS_S.get(version)
    try:
        return float(ours(version))
    except ValueError:
        return None


@dataclass
class Replay:
    """Sequential simulated-time replay of one task for hpbandster; records one row per trained epoch."""

    task: PeerTask
    budget_s: float
    lo: np.ndarray = field(init=False)
    span: np.ndarray = field(init=False)
    scaled: np.ndarray = field(init=False)
    highest: np.ndarray = field(init=False)
    clock: float = 0.0
    incumbent: float = math.nan
    exhausted: bool = False
    rows: list[dict] = field(default_factory=list)
    n_asks: int = 0
    n_configs: int = 0  # configurations hpbandster sampled
    model_based: int = 0  # of which drawn from BOHB's KDE model (the rest at random)

    def __post_init__(self) -> None:
        f = self.task.features
        self.lo, hi = f.min(axis=0), f.max(axis=0)
        self.span = np.where(hi > self.lo, hi - self.lo, 1.0)
        self.scaled = (f - self.lo) / self.span
        self.highest = np.zeros(len(f), dtype=np.int64)

    def nearest(self, x: np.ndarray) -> int:
        """Index of the candidate closest to the (unscaled) feature vector ``x``."""
        d = ((self.scaled - (x - self.lo) / self.span) ** 2).sum(axis=1)
        return int(np.argmin(d))

    def evaluate(self, x: np.ndarray, budget: float) -> float:
        """Trains the nearest candidate up to ``round(budget)`` epochs; returns the loss ``1 - accuracy``."""
        self.n_asks += 1
        t = self.task
        i = self.nearest(x)
        b = int(min(max(round(budget), 1), t.n_epochs[i]))
        for e in range(int(self.highest[i]) + 1, b + 1):
            if self.exhausted:
                break
            c = float(t.cost[i, e - 1])
            if self.clock + c > self.budget_s:
                self.exhausted = True
                break
            self.clock += c
            self.highest[i] = e
            v = float(t.values[i, e - 1])
            if math.isfinite(v):
                self.incumbent = v if math.isnan(self.incumbent) else max(self.incumbent, v)
            regret = 1.0 if math.isnan(self.incumbent) else regret_of(self.incumbent, t.best, t.worst)
            self.rows.append(
                {"step": self.n_asks - 1, "time": self.clock, "pipeline": i, "epoch": e, "value": v}
                | {"incumbent": self.incumbent, "regret": regret}
            )
        acc = float(t.values[i, b - 1])
        return 1.0 - acc if math.isfinite(acc) else 1.0


class TableWorker(Worker):
    """hpbandster worker that looks configurations up in the replay instead of training."""

    def __init__(self, replay: Replay, columns: list[str], *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.replay = replay
        self.columns = columns

    def compute(self, config, budget, **kwargs):
        x = self.replay.lo.copy()
        for j, name in enumerate(self.columns):
            if name in config:
                x[j] = float(config[name])
        return {"loss": float(self.replay.evaluate(x, float(budget))), "info": {}}


def config_space(task: PeerTask, seed: int) -> tuple[CS.ConfigurationSpace, list[str]]:
    """One ``uniform(min, max)`` per non-constant encoded column (the paper's syne-tune setup)."""
    cs = CS.ConfigurationSpace(seed=seed)
    names = [f"x{j}" for j in range(task.features.shape[1])]
    lo, hi = task.features.min(axis=0), task.features.max(axis=0)
    for j, name in enumerate(names):
        if hi[j] > lo[j]:
            cs.add(CS.UniformFloatHyperparameter(name, lower=float(lo[j]), upper=float(hi[j])))
    return cs, names


def run_one(task: PeerTask, seed: int, budget_s: float, eta: int, max_iterations: int) -> tuple[Replay, int]:
    """One BOHB run until the simulated budget is spent; returns the replay and the SH iterations run."""
    np.random.seed(seed)  # hpbandster samples from numpy's global generator (see module docstring)
    replay = Replay(task, budget_s)
    cs, names = config_space(task, seed)
    run_id = f"{METHOD}-{task.dataset}-{seed}"
    ns = hpns.NameServer(run_id=run_id, host="127.0.0.1", port=0)
    host, port = ns.start()
    worker = TableWorker(replay, names, nameserver=host, nameserver_port=port, run_id=run_id)
    worker.run(background=True)
    opt = BOHB(
        configspace=cs,
        run_id=run_id,
        nameserver=host,
        nameserver_port=port,
        min_budget=1,
        max_budget=task.max_epochs,
        eta=eta,
        ping_interval=1,
    )
    iterations = 0
    try:
        while not replay.exhausted and iterations < max_iterations:
            res = opt.run(n_iterations=1)
            iterations += 1
    finally:
        opt.shutdown(shutdown_workers=True)
        ns.shutdown()
    if iterations:
        infos = [d.config_info for d in res.data.values()]
        replay.model_based = sum(bool(i.get("model_based_pick")) for i in infos)
        replay.n_configs = len(infos)
    return replay, iterations


def write_result(out: Path, task: PeerTask, seed: int, budget_s: float, replay: Replay) -> Path:
    """Writes the run's events in the RESULTS layout (contract D)."""
    schema = {
        "step": pl.Int64,
        "time": pl.Float64,
        "pipeline": pl.Int64,
        "epoch": pl.Int64,
        "value": pl.Float64,
        "incumbent": pl.Float64,
        "regret": pl.Float64,
    }
    frame = pl.DataFrame(replay.rows, schema=schema).with_columns(
        pl.lit(METHOD).alias("method"),
        pl.lit(task.version).alias("version"),
        pl.lit(task.dataset).alias("dataset"),
        pl.lit(seed, dtype=pl.Int64).alias("seed"),
        pl.lit(budget_s, dtype=pl.Float64).alias("budget_s"),
    )
    cols = ["method", "version", "dataset", "seed", "step", "time", "pipeline", "epoch", "value"]
    frame = frame.select([*cols, "incumbent", "regret", "budget_s"])
    path = out / f"version={task.version}" / f"method={METHOD}" / f"dataset={task.dataset}" / f"seed={seed}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    frame.write_parquet(tmp)
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", required=True, help="learning-curve store (e.g. a synthetic one)")
    p.add_argument("--version", required=True, help="meta-dataset version: micro | mini | extended | ...")
    p.add_argument("--datasets", nargs="*", default=None, help="datasets (default: all of the version)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--budget-s", type=float, default=None, help="simulated seconds (default: our replay's)")
    p.add_argument("--eta", type=int, default=3)
    p.add_argument("--max-iterations", type=int, default=10_000, help="safety cap on SH iterations")
    p.add_argument("--out", required=True, help="RESULTS directory to write into")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    budget = a.budget_s if a.budget_s is not None else default_budget(a.version)
    if budget is None:
        p.error(f"--budget-s is required for version '{a.version}' (it has no default budget)")
    if not Path(a.store).is_dir():
        p.error(f"store {a.store} does not exist; make one with `python -m metagen.store synth DIR --profile paper`")
    tasks = load_peer_tasks(a.store, a.version, a.datasets)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "method": METHOD,
        "peer": "hpbandster 0.7.4 BOHB",
        "store": str(Path(a.store).resolve()),
        "version": a.version,
        "datasets": [t.dataset for t in tasks],
        "seeds": a.seeds,
        "budget_s": budget,
        "eta": a.eta,
        "overhead": "none",
        "n_workers": 1,
        "tasks_from": tasks[0].source if tasks else None,
    }
    (out / f"peer-{METHOD}-{a.version}.json").write_text(json.dumps(meta, indent=2))
    print(f"{METHOD}: {len(tasks)} tasks from {meta['tasks_from']}, seeds {a.seeds}, budget {budget:.0f} s")
    for task in tasks:
        for seed in a.seeds:
            t0 = time.perf_counter()
            replay, iterations = run_one(task, seed, budget, a.eta, a.max_iterations)
            path = write_result(out, task, seed, budget, replay)
            final = replay.rows[-1]["regret"] if replay.rows else 1.0
            print(
                f"{task.dataset:>10} seed={seed} iterations={iterations:3d} asks={replay.n_asks:4d} "
                f"configs={replay.n_configs:3d} (model-based {replay.model_based:3d}) "
                f"epochs={len(replay.rows):4d} sim={replay.clock:8.0f}s regret={final:.4f} "
                f"real={time.perf_counter() - t0:5.1f}s -> {path.relative_to(out)}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
