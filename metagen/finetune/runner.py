"""``finetune(cfg)``: train one pipeline on one dataset, epoch by epoch, and write it into the store.

Order of work: resolve the pipeline and check every setting (config errors raise here, before any
training) -> return at once if the store holds the run -> resume from the run's checkpoint if there
is one -> train, checkpointing after every epoch -> write the run with its status:

* ok: the epoch budget was trained;
* diverged: a training loss was NaN/inf (that epoch is kept with NaN values), or an epoch's mean
  classification loss (the training loss without regulariser penalties) exploded beyond
  ``DIVERGED_LOSS_FACTOR`` x ln(classes), the loss of a uniform guess (that epoch is kept, evaluated);
* timeout: the wall-clock cap (train + eval time, accumulated across resumes) was reached; the
  epoch in progress is dropped, the curve so far kept;
* oom: out of memory even at ``min_batch_size`` (the batch size is halved and the run restarted first);
* error: anything else raised during training (the message is stored; nothing is raised).

``finish_as_timeout`` (a reason) writes the run as ``timeout`` with its checkpointed curve and that
reason, without training: how a sweep closes a run that was preempted too often.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metagen.finetune import checkpoint as ckpt
from metagen.finetune.config import FinetuneConfig
from metagen.finetune.data import EpochBatches, SplitImages, eval_loader, eval_transform, train_loader, train_transform
from metagen.finetune.errors import FinetuneConfigError, Interrupted
from metagen.finetune.freeze import apply_freeze
from metagen.finetune.loop import StepParts, StopEpoch, evaluate, train_epoch
from metagen.finetune.lora import add_lora
from metagen.finetune.mixup import SeededMixup
from metagen.finetune.models import BuiltModel, WeightsSource, build_model, head_names, is_head, resolve_weights
from metagen.finetune.optim import build_loss, build_optimizer, build_scheduler, mean_lr, mixup_active
from metagen.finetune.pipeline import open_dataset, resolve_pipeline
from metagen.finetune.provenance import hardware, package_versions, peak_memory, reset_peak_memory
from metagen.finetune.recipe import recipe_of
from metagen.finetune.regularizers import Regularizers
from metagen.finetune.store_io import check_dataset_content, check_outputs, check_store, run_row, stored_run, write
from metagen.store.schema import make_run_id, pipeline_id

StopFn = Callable[[], bool]
EpochFn = Callable[[dict[str, Any]], None]


def _clock(name: str) -> Callable[[], float]:
    """How epoch times (and the cap) are measured: ``wall`` seconds, or ``process``: this process's CPU seconds
    (all its threads), which other load on a shared CPU machine does not inflate (CPU runs, ``num_workers=0``)."""
    return time.process_time if name == "process" else time.monotonic


DIVERGED_LOSS_FACTOR = 100.0
"""A mean classification loss above this many times ln(num_classes) (cross-entropy of a uniform guess) marks the
run diverged: its logits blew up. The penalties of L2-SP/DELTA/BSS are left out of the test, as they can be
large from the first step without any divergence (DELTA compares train-mode and eval-mode features)."""


@dataclass(frozen=True)
class FinetuneResult:
    """What a call of :func:`finetune` did.

    Attributes:
        run_id: the run's id in the store.
        status: ok | diverged | timeout | oom | error (the stored status when it was already stored).
        n_epochs: epochs in the curve.
        resumed_from_epoch: the checkpoint's epoch the run continued from (``None``: started afresh).
        wrote_store: whether this call wrote the run (False: it was already stored).
        elapsed_s: wall-clock seconds of this call.
        message: the error message (status error/oom), or a note (e.g. already stored with a smaller budget).
        final_top1: validation top-1 of the last epoch this call wrote (``None``: nothing written or no epoch).
    """

    run_id: str
    status: str
    n_epochs: int
    resumed_from_epoch: int | None
    wrote_store: bool
    elapsed_s: float
    message: str | None = None
    final_top1: float | None = None


@dataclass
class _Outcome:
    status: str
    curve: list[dict[str, Any]]
    message: str | None
    batch_size: int
    resumed_from: int | None
    transforms: tuple[str, str] | None = None  # (train, eval) pipelines as run; None when nothing was trained


def _is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or (isinstance(e, RuntimeError) and "out of memory" in str(e))


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FinetuneConfigError(f"device={name} asked for, but CUDA is not available; use device=cpu or auto")
    return device


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, 7]).generate_state(1)[0])


def default_checkpoint_dir(store: str | Path) -> Path:
    """``<store>.checkpoints`` beside the store."""
    p = Path(store).resolve()
    return p.with_name(p.name + ".checkpoints")


@contextlib.contextmanager
def _torch_settings(cfg: FinetuneConfig, device: torch.device) -> Iterator[None]:
    """Threads, deterministic algorithms and a private RNG stream, all restored on exit."""
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    bench = torch.backends.cudnn.benchmark
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    if cfg.deterministic:
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)
        torch.backends.cudnn.benchmark = bench


def _scheduler_state(scheduler: Any) -> dict[str, Any]:
    state = {"timm": scheduler.state_dict()}
    inner = getattr(scheduler, "lr_scheduler", None)  # plateau: torch's ReduceLROnPlateau (timm keeps only 'best')
    if inner is not None:
        state["inner"] = inner.state_dict()
    return state


def _load_scheduler_state(scheduler: Any, state: dict[str, Any]) -> None:
    scheduler.load_state_dict(state["timm"])
    if "inner" in state:
        scheduler.lr_scheduler.load_state_dict(state["inner"])


class _Run:
    """One training attempt at a fixed batch size (a fresh one after an out-of-memory halving)."""

    def __init__(
        self,
        cfg: FinetuneConfig,
        model_name: str,
        hps: dict[str, Any],
        ds: Any,
        split: Any,
        weights: WeightsSource,
        device: torch.device,
        run_id: str,
        ck_dir: Path,
        fingerprint: dict[str, Any],
        on_epoch: EpochFn | None = None,
    ):
        self.cfg, self.model_name, self.hps, self.ds, self.split = cfg, model_name, hps, ds, split
        self.weights, self.device, self.run_id = weights, device, run_id
        self.ck_dir, self.fingerprint, self.on_epoch = ck_dir, fingerprint, on_epoch
        self.num_classes = len(ds.classes)
        self.amp = bool(hps.get("amp")) and device.type == "cuda"

    def build(self) -> BuiltModel:
        hps = self.hps
        torch.manual_seed(self.cfg.seed)  # the new head's initialisation (inside the private RNG stream)
        built = build_model(
            self.model_name, self.num_classes, weights=self.weights, img_size=self.cfg.img_size, drop=float(hps["drop"])
        )
        if hps.get("stoch_norm"):
            from metagen.finetune.stochnorm import convert_to_stoch_norm

            convert_to_stoch_norm(built.model)
        if int(hps.get("lora_rank") or 0) > 0:
            add_lora(built.model, self.model_name, hps)
        built.model.to(self.device)
        if built.source_head is not None:
            built.source_head.to(self.device)
        return built

    def run(
        self, batch_size: int, state: dict[str, Any] | None, should_stop: StopFn | None, stop_after: int | None = None
    ) -> _Outcome:
        cfg, hps, device = self.cfg, self.hps, self.device
        built = self.build()
        model = built.model
        heads = head_names(model)
        optimizer = build_optimizer(model, hps)
        pct = float(hps["pct_to_freeze"])
        lp_switch = cfg.schedule_epochs // 2 if hps.get("linear_probing") else 0
        apply_freeze(model, 1.0 if lp_switch > 0 else pct)
        regs = Regularizers(
            model,
            sp=hps["sp_reg"],
            delta=hps["delta_reg"],
            bss=hps["bss_reg"],
            cotuning=hps["cotuning_reg"],
            source_head=built.source_head,
        ).to(device)
        scheduler = build_scheduler(optimizer, hps, cfg.schedule_epochs)
        scaler = torch.amp.GradScaler(device.type, enabled=self.amp)
        pin = device.type == "cuda"
        train_tf, eval_tf = train_transform(built.data_config, hps, recipe_of(hps)), eval_transform(built.data_config)
        transforms = (repr(train_tf), repr(eval_tf))
        train_images = SplitImages(self.ds, self.split.train, train_tf)
        val_images = SplitImages(self.ds, self.split.val, eval_tf)
        batches = EpochBatches(len(train_images), batch_size, cfg.seed)
        loader = train_loader(train_images, batches, cfg.num_workers, pin)
        val_loader = eval_loader(val_images, max(batch_size, 16), cfg.num_workers, pin)
        mixup = None
        if mixup_active(hps):
            mixup = SeededMixup(
                np.random.default_rng([cfg.seed, 0, 1]),
                mixup_alpha=float(hps["mixup"]),
                cutmix_alpha=float(hps["cutmix"]),
                prob=float(hps["mixup_prob"]),
                switch_prob=0.5,
                label_smoothing=float(hps["smoothing"]),
                num_classes=self.num_classes,
            )
        curve: list[dict[str, Any]] = []
        elapsed = 0.0
        start = 0
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            _load_scheduler_state(scheduler, state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            curve, elapsed, start = list(state["curve"]), float(state["elapsed_s"]), int(state["epoch"])
            if state.get("relationship") is not None:
                regs.relationship = state["relationship"].to(device)
        elif regs.cotuning > 0:
            rel_images = SplitImages(self.ds, self.split.train, eval_transform(built.data_config))
            regs.fit_relationship(
                model,
                ((x.to(device), y.to(device)) for x, y in eval_loader(rel_images, max(batch_size, 16), 0, pin)),
                self.num_classes,
            )
        head_params = [p for n, p in model.named_parameters() if is_head(n, heads)]
        body_params = [p for n, p in model.named_parameters() if not is_head(n, heads)]
        parts = StepParts(
            model=model,
            optimizer=optimizer,
            loss_fn=build_loss(hps),
            scaler=scaler,
            device=device,
            amp=self.amp,
            clip_grad=None if hps.get("clip_grad") is None else float(hps["clip_grad"]),
            head_params=head_params,
            body_params=body_params,
            regularizers=regs if regs.active else None,
            mixup=mixup,
        )
        status, message = "ok", None
        now = _clock(cfg.clock)
        if start >= cfg.epochs:  # the checkpoint is ahead of this (smaller) budget: curves are prefix-stable
            return _Outcome("ok", curve[: cfg.epochs], None, batch_size, start, transforms)
        for epoch in range(start, cfg.epochs):
            if lp_switch and epoch >= lp_switch:
                apply_freeze(model, pct)
            torch.manual_seed(_epoch_seed(cfg.seed, epoch))
            batches.set_epoch(epoch)
            if mixup is not None:
                mixup.rng = np.random.default_rng([cfg.seed, epoch, 1])
            reset_peak_memory(device)
            t0 = now()

            def check(t0: float = t0, elapsed: float = elapsed) -> None:
                if should_stop is not None and should_stop():
                    raise StopEpoch("stop")
                if cfg.cap_s is not None and elapsed + (now() - t0) > cfg.cap_s:
                    raise StopEpoch("timeout")

            try:
                tr = train_epoch(parts, loader, check)
                t1 = now()
                if tr["diverged"]:
                    curve.append(self._row(epoch, tr, None, t1 - t0, 0.0, mean_lr(optimizer)))
                    if self.on_epoch is not None:
                        self.on_epoch(curve[-1])
                    status, message = "diverged", f"non-finite training loss in epoch {epoch + 1}"
                    break
                check()
                ev = evaluate(model, val_loader, device, self.amp, self.num_classes)
                exploded = tr["train_ce"] > DIVERGED_LOSS_FACTOR * max(math.log(self.num_classes), 1.0)
            except StopEpoch as s:
                if s.reason == "stop":
                    raise Interrupted(self.run_id, epoch) from None
                status, message = "timeout", f"wall-clock cap of {cfg.cap_s} s reached during epoch {epoch + 1}"
                break
            t2 = now()
            lr = mean_lr(optimizer)
            if exploded:
                curve.append(self._row(epoch, tr, ev, t1 - t0, t2 - t1, lr))
                if self.on_epoch is not None:
                    self.on_epoch(curve[-1])
                status = "diverged"
                k = self.num_classes
                message = (f"classification loss {tr['train_ce']:.4g} in epoch {epoch + 1} exceeds "
                           f"{DIVERGED_LOSS_FACTOR:g} x ln({k}) (a uniform guess scores ln({k}))")  # fmt: skip
                break
            scheduler.step(epoch + 1, ev["eval_top1"])
            curve.append(self._row(epoch, tr, ev, t1 - t0, t2 - t1, lr))
            if self.on_epoch is not None:
                self.on_epoch(curve[-1])
            elapsed += t2 - t0
            ckpt.save(
                self.ck_dir,
                {
                    "fingerprint": self.fingerprint,
                    "epoch": epoch + 1,
                    "elapsed_s": elapsed,
                    "batch_size": batch_size,
                    "curve": curve,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": _scheduler_state(scheduler),
                    "scaler": scaler.state_dict(),
                    "relationship": None if regs.relationship is None else regs.relationship.cpu(),
                    "rng": {
                        "torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
                    },
                },
            )
            if epoch + 1 < cfg.epochs and (
                (stop_after is not None and epoch + 1 >= stop_after) or (should_stop is not None and should_stop())
            ):
                raise Interrupted(self.run_id, epoch + 1)
            if cfg.cap_s is not None and elapsed >= cfg.cap_s and epoch + 1 < cfg.epochs:
                status, message = "timeout", f"wall-clock cap of {cfg.cap_s} s reached after epoch {epoch + 1}"
                break
        return _Outcome(status, curve, message, batch_size, start if state is not None else None, transforms)

    def _row(
        self, epoch: int, tr: dict[str, float], ev: dict[str, float] | None, t_train: float, t_eval: float, lr: float
    ) -> dict[str, Any]:
        nan = math.nan
        return {
            "epoch": epoch + 1,
            "train_loss": tr["train_loss"],
            "eval_loss": nan if ev is None else ev["eval_loss"],
            "eval_top1": nan if ev is None else ev["eval_top1"],
            "eval_top5": nan if ev is None else ev["eval_top5"],
            "train_time": t_train,
            "eval_time": t_eval,
            "lr": lr,
            "head_grad_norm": tr["head_grad_norm"],
            "backbone_grad_norm": tr["backbone_grad_norm"],
            "peak_memory": peak_memory(self.device),
        }


def _first_batch_size(asked: int, n_train: int) -> int:
    """The asked batch size, capped at the training images (rounded down to even, for MixUp)."""
    return max(1, min(asked, n_train - (n_train % 2) if n_train > 1 else n_train))


def _saved_curve(ck_dir: Path, fingerprint: dict[str, Any]) -> list[dict[str, Any]]:
    """The curve of the run's last checkpoint (the epochs completed before a failure), or []."""
    try:
        state = ckpt.load(ck_dir, fingerprint)
    except FinetuneConfigError:
        return []
    return list(state["curve"]) if state else []


def _train_halving_on_oom(
    attempt: _Run,
    batch_size: int,
    state: dict[str, Any] | None,
    should_stop: StopFn | None,
    stop_after: int | None = None,
) -> _Outcome:
    """Train the run; on out-of-memory halve the batch size and restart, down to ``min_batch_size``.

    Errors other than Interrupted become an ``error`` outcome with the checkpointed curve.
    """
    cfg = attempt.cfg
    while True:
        try:
            return attempt.run(batch_size, state, should_stop, stop_after)
        except Interrupted:
            raise
        except Exception as e:
            if _is_oom(e):
                if attempt.device.type == "cuda":
                    torch.cuda.empty_cache()
                if batch_size // 2 >= cfg.min_batch_size:
                    batch_size //= 2
                    state = None
                    ckpt.remove(attempt.ck_dir)  # it belongs to the larger batch size
                    continue
                message = f"out of memory at batch size {batch_size} (min_batch_size {cfg.min_batch_size}): {e}"
                return _Outcome("oom", _saved_curve(attempt.ck_dir, attempt.fingerprint), message, batch_size, None)
            message = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=8)}"
            return _Outcome("error", _saved_curve(attempt.ck_dir, attempt.fingerprint), message, batch_size, None)


def finetune(
    cfg: FinetuneConfig,
    should_stop: StopFn | None = None,
    finish_as_timeout: str | None = None,
    stop_after_epoch: int | None = None,
    on_epoch: EpochFn | None = None,
) -> FinetuneResult:
    """Finetune one pipeline on one dataset and write the run into the store (see the module doc).

    Args:
        cfg: the run.
        should_stop: polled between batches; True stops the run (its checkpoint is kept) and raises Interrupted.
        finish_as_timeout: when given, do not train: write the run as ``timeout`` with the curve of its last
            checkpoint (empty if none) and this reason as its message, keeping ``cfg.cap_s`` as its cap. A
            checkpoint that already holds the whole budget is written as ``ok`` instead.
        stop_after_epoch: train the ``cfg.epochs`` budget (and its schedule) but stop once this epoch is
            checkpointed, raising Interrupted without writing the run (freeze-thaw steps of ``metagen.tune``);
            at or beyond ``cfg.epochs`` it changes nothing.
        on_epoch: called with each epoch's curve row (``epoch``, ``train_loss``, ``eval_top1``, times, ...) as
            soon as it is trained (the command line prints a line per epoch with it).

    Raises:
        FinetuneConfigError (ValueError): unknown model, bad hyperparameter or setting, incompatible checkpoint.
        FileNotFoundError subclasses: missing dataset or store, pretrained weights unavailable.
        Interrupted: ``should_stop()`` returned True, or ``stop_after_epoch`` was reached (the last completed
            epoch's checkpoint is on disk).
    """
    t_start = time.monotonic()
    model_name, hps = resolve_pipeline(cfg)
    ds = open_dataset(cfg.dataset)
    name = ds.name
    run_id = make_run_id(cfg.version, name, pipeline_id(model_name, hps), cfg.seed)
    check_store(cfg.store)
    content = ds.fingerprint()
    check_dataset_content(cfg.store, cfg.version, name, content, cfg.dataset)
    stored = stored_run(cfg.store, cfg.version, name, run_id)
    if stored is not None:
        note = None
        if stored["max_epochs"] < cfg.epochs:
            note = (
                f"already stored with a budget of {stored['max_epochs']} epochs (< {cfg.epochs}); a run id names one "
                "result, so extend it into another store (its checkpoint resumes it)"
            )
        return FinetuneResult(run_id, stored["status"], stored["n_epochs"], None, False, 0.0, note)
    check_outputs(cfg.store, cfg.version, name, cfg.checkpoint_dir or default_checkpoint_dir(cfg.store))
    weights = resolve_weights(model_name, cfg.pretrained, cfg.weights_file, cfg.hub_dir)
    if float(hps["cotuning_reg"]) > 0 and weights.kind == "random":
        raise FinetuneConfigError(
            "cotuning_reg > 0 needs the pretrained source head, which pretrained=none lacks; set hp.cotuning_reg=0"
        )
    device = _device(cfg.device)
    split = ds.split()
    meta = ds.meta_features(split)
    ck_dir = ckpt.run_dir(cfg.checkpoint_dir or default_checkpoint_dir(cfg.store), run_id)
    fingerprint = {
        "run_id": run_id,
        "model": model_name,
        "hps": sorted((k, repr(v)) for k, v in hps.items()),
        "seed": cfg.seed,
        "pretrained_source": weights.provenance,
        "img_size": cfg.img_size,
        "schedule_epochs": cfg.schedule_epochs,
    }
    state = ckpt.load(ck_dir, fingerprint)
    batch_size = int(state["batch_size"]) if state else _first_batch_size(int(hps["batch_size"]), meta["train_size"])
    attempt = _Run(cfg, model_name, hps, ds, split, weights, device, run_id, ck_dir, fingerprint, on_epoch)
    done = state is not None and int(state["epoch"]) >= cfg.epochs
    if finish_as_timeout is not None and not done:
        curve = list(state["curve"]) if state else []
        outcome = _Outcome("timeout", curve, finish_as_timeout, batch_size, len(curve) if state else None)
    else:
        with _torch_settings(cfg, device):
            outcome = _train_halving_on_oom(attempt, batch_size, state, should_stop, stop_after_epoch)
    run = run_row(
        run_id=run_id,
        pipeline=pipeline_id(model_name, hps),
        dataset=name,
        version=cfg.version,
        model=model_name,
        hps=hps,
        seed=cfg.seed,
        max_epochs=cfg.epochs,
        status=outcome.status,
        message=outcome.message,
        final_batch_size=outcome.batch_size,
        cap_s=cfg.cap_s,
        meta_features=meta,
        pretrained_source=weights.provenance,
        hardware=hardware(device, cfg.num_threads or None),
        package_versions=package_versions(),
        dataset_fingerprint=content,
        transforms=outcome.transforms,
        time_clock=cfg.clock,
    )
    wrote = write(cfg.store, run, outcome.curve)
    if not cfg.keep_checkpoint:
        ckpt.remove(ck_dir)
    return FinetuneResult(
        run_id,
        outcome.status,
        len(outcome.curve),
        outcome.resumed_from,
        wrote,
        time.monotonic() - t_start,
        outcome.message,
        float(outcome.curve[-1]["eval_top1"]) if outcome.curve else None,
    )
