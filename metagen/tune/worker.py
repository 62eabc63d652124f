"""One step of a tuning session, run in a worker process (or a SLURM job): train a pipeline from its
checkpoint up to the asked epoch with ``metagen.finetune`` and report the epochs it has now.

How a pipeline's run reaches the store: every step trains with the pipeline's full epoch budget as
``epochs`` (so the LR schedule and the run id are those of the full run) and stops once the asked epoch
is checkpointed (``stop_after_epoch``: the runner raises ``Interrupted`` and keeps the checkpoint, which
holds the curve so far). The runner writes the run itself when it reaches the budget or ends otherwise
(diverged, error, out of memory); a pipeline still short of its budget when the session ends is written
by :func:`close_run` as ``timeout`` with its checkpointed curve and a message saying so. A run id is
immutable once written, so a run is written exactly once, when nothing more will be trained.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from metagen.store.files import read_run_file
from metagen.store.layout import compacted_parts, loose_path


@dataclass(frozen=True)
class EpochRow:
    """One trained epoch as the session sees it: validation top-1 (``nan`` = diverged) and its seconds."""

    epoch: int
    value: float
    cost: float


@dataclass(frozen=True)
class StepOutcome:
    """What a step left behind.

    Attributes:
        run_id: the pipeline's run.
        epochs: every epoch the pipeline has now (store or checkpoint), in order.
        status: the stored status when the run is in the store (it can give nothing more), else ``None``.
        error: an exception raised before training (the step trained nothing), as text.
        wall_s: seconds the step took.
    """

    run_id: str
    epochs: list[EpochRow] = field(default_factory=list)
    status: str | None = None
    error: str | None = None
    wall_s: float = 0.0


def _rows(curve: list[dict[str, Any]]) -> list[EpochRow]:
    out = []
    for r in curve:
        v = r.get("eval_top1")
        value = math.nan if v is None else float(np.float32(v))  # as the store keeps it, from either source
        cost = float(r.get("train_time") or 0.0) + float(r.get("eval_time") or 0.0)
        out.append(EpochRow(int(r["epoch"]), value, cost))
    return sorted(out, key=lambda r: r.epoch)


def stored_curve(store: str | Path, version: str, dataset: str, run_id: str) -> tuple[str, list[EpochRow]] | None:
    """``(status, epochs)`` of a run in the store, or ``None`` if it is not there."""
    loose = loose_path(store, version, dataset, run_id)
    if loose.is_file():
        runs, curves = read_run_file(loose, check=False)
        return str(runs["status"][0]), _rows(curves.to_dicts())
    for runs_path, curves_path in compacted_parts(store, version, dataset):
        ids = pq.read_table(runs_path, columns=["run_id", "status"]).to_pylist()
        hit = [r for r in ids if r["run_id"] == run_id]
        if hit:
            table = pq.read_table(curves_path, filters=[("run_id", "=", run_id)]).to_pylist()
            return str(hit[0]["status"]), _rows(table)
    return None


def checkpoint_curve(checkpoint_dir: str | Path, run_id: str) -> list[EpochRow]:
    """The epochs in a run's checkpoint (``[]`` without one)."""
    import torch

    from metagen.finetune.checkpoint import run_dir

    path = run_dir(checkpoint_dir, run_id) / "last.pt"
    if not path.is_file():
        return []
    state = torch.load(path, map_location="cpu", weights_only=False)  # the runner's own file
    return _rows(list(state.get("curve", [])))


def current_epochs(spec: dict[str, Any]) -> tuple[str | None, list[EpochRow]]:
    """``(stored status or None, epochs)`` of a step's pipeline: the store first, else its checkpoint."""
    cfg = spec["finetune"]
    stored = stored_curve(cfg["store"], cfg["version"], spec["dataset_name"], spec["run_id"])
    if stored is not None:
        return stored
    return None, checkpoint_curve(cfg["checkpoint_dir"], spec["run_id"])


def run_step(spec: dict[str, Any]) -> StepOutcome:
    """Trains ``spec["run_id"]`` up to epoch ``spec["target"]`` (see the module doc); never raises.

    ``spec``: ``finetune`` (the ``FinetuneConfig`` fields), ``target``, ``run_id``, ``dataset_name``,
    ``stop_file`` (when it exists the step stops at the next batch, keeping its checkpoint), ``relaunched``
    (a step a killed session had started: nothing is trained if the pipeline already reached ``target``).
    """
    import time

    from metagen.finetune import FinetuneConfig, Interrupted, finetune

    t0 = time.monotonic()
    if spec.get("relaunched"):  # the step may have ended before the kill (the runner would train one more epoch)
        status, epochs = current_epochs(spec)
        if status is not None or (epochs and epochs[-1].epoch >= int(spec["target"])):
            return StepOutcome(spec["run_id"], epochs, status, None, time.monotonic() - t0)
    stop_file = spec.get("stop_file")

    def should_stop() -> bool:
        return stop_file is not None and os.path.exists(stop_file)

    try:
        finetune(FinetuneConfig(**spec["finetune"]), should_stop=should_stop, stop_after_epoch=int(spec["target"]))
    except Interrupted:
        pass
    except Exception as e:  # a bad pipeline must not end the session: report it, train nothing more of it
        status, epochs = current_epochs(spec)
        return StepOutcome(spec["run_id"], epochs, status, f"{type(e).__name__}: {e}", time.monotonic() - t0)
    status, epochs = current_epochs(spec)
    return StepOutcome(spec["run_id"], epochs, status, None, time.monotonic() - t0)


def close_run(spec: dict[str, Any], reason: str) -> str | None:
    """Writes a pipeline that is short of its budget into the store as ``timeout`` with its checkpointed
    curve and ``reason``; returns the status written (``None`` if it was already stored or never trained)."""
    from metagen.finetune import FinetuneConfig, finetune

    status, epochs = current_epochs(spec)
    if status is not None or not epochs:
        return None
    return finetune(FinetuneConfig(**spec["finetune"]), finish_as_timeout=reason).status


def set_parent_death_signal() -> None:
    """Linux: this process gets SIGKILL when its parent dies (no orphan keeps training a pipeline that a
    relaunched session would resume); elsewhere nothing."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
