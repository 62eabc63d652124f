"""Pretraining a small timm architecture from random initialisation on an offline source corpus.

The corpora (:mod:`metagen.hub.corpora`) are disjoint from the bundled store's target datasets; each
has an evaluation split, which gives the card's source accuracy.

Recipe: AdamW, per-step cosine schedule with linear warmup, label smoothing, light augmentation
(random crop of the zero-padded image, horizontal flip where the corpus allows it; no vertical flip, no
colour change),
normalised with the architecture's timm mean/std (the same the finetuning runner uses).

Each epoch trains on ``images`` images drawn afresh, without replacement, from the whole train
split. The run is a pure function of its settings: every random draw comes from a generator seeded
by ``(seed, epoch, ...)``, and the model is initialised under a fixed seed; so a run resumed from its
per-epoch checkpoint (``<out>/<card_id>.partial/checkpoint.pt``) ends with the same weights.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metagen._timm import import_timm
from metagen.finetune.data import seeded_global_rngs
from metagen.finetune.provenance import cpu_model, package_versions
from metagen.hub.card import WEIGHTS_FILE, HubCard, HubCardError, sha256_file, write_card
from metagen.hub.corpora import Corpus

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class PretrainSettings:
    """Everything that determines the weights (a checkpoint resumes only under equal settings).

    Attributes:
        architecture: timm architecture name.
        corpus: corpus tag.
        resolution: input side length.
        epochs: epochs to train.
        images: training images per epoch (``None`` = the whole train split).
        batch_size, lr, weight_decay, betas, warmup_steps, label_smoothing: the optimisation.
        pad: zero padding (pixels) before the random crop; 0 = no crop.
        hflip: whether to flip horizontally with probability 0.5.
        seed: the seed of initialisation, sampling, and augmentation.
    """

    architecture: str
    corpus: str
    resolution: int
    epochs: int
    images: int | None
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 200
    label_smoothing: float = 0.1
    pad: int = 4
    hflip: bool = True
    seed: int = 0

    @property
    def card_id(self) -> str:
        """``<architecture>.<corpus tag><resolution>``."""
        return f"{self.architecture}.{self.corpus}{self.resolution}"


def check_settings(settings: PretrainSettings) -> None:
    """The checks that need no corpus (run before loading one).

    Raises:
        HubCardError: an unknown architecture, or a value out of range (named in the message).
    """
    timm = import_timm()
    if settings.architecture not in timm.list_models():
        raise HubCardError(f"unknown timm architecture {settings.architecture!r}; see timm.list_models()")
    checks = [
        (settings.epochs >= 1, f"epochs={settings.epochs} must be at least 1"),
        (settings.images is None or settings.images >= 1, f"images={settings.images} must be at least 1"),
        (settings.batch_size >= 1, f"batch_size={settings.batch_size} must be at least 1"),
        (settings.lr > 0, f"lr={settings.lr} must be positive"),
        (settings.warmup_steps >= 0, f"warmup_steps={settings.warmup_steps} must be >= 0"),
        (0 <= settings.pad < settings.resolution, f"pad={settings.pad} must be in 0..{settings.resolution - 1}"),
    ]
    for ok, why in checks:
        if not ok:
            raise HubCardError(why)


def validate(settings: PretrainSettings, corpus: Corpus) -> int:
    """Check the settings, also against the corpus, before any compute; returns the images per epoch.

    Raises:
        HubCardError: an unknown architecture, or a value out of range (named in the message).
    """
    check_settings(settings)
    n = len(corpus.train_labels)
    per_epoch = n if settings.images is None else settings.images
    checks = [
        (per_epoch <= n, f"images={per_epoch} must be in 1..{n} (the {corpus.train_split} split's size)"),
        (settings.batch_size <= per_epoch, f"batch_size={settings.batch_size} must be in 1..images ({per_epoch})"),
        (corpus.resolution == settings.resolution, f"corpus is {corpus.resolution} px, not {settings.resolution}"),
        (
            corpus.hflip_ok or not settings.hflip,
            f"corpus {corpus.tag!r} does not tolerate horizontal flips (mirrored glyphs change class); "
            "pretrain it with --no-hflip",
        ),
    ]
    for ok, why in checks:
        if not ok:
            raise HubCardError(why)
    return per_epoch


def to_input(images: np.ndarray, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(B, H, W[, 3]) uint8 -> (B, 3, H, W) float, grey replicated to RGB, normalised."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    x = x.unsqueeze(1).expand(-1, 3, -1, -1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return (x - mean) / std


def augment(x: torch.Tensor, pad: int, hflip: bool, gen: torch.Generator) -> torch.Tensor:
    """Random crop of the zero-padded batch (pixel value 0 before normalisation) and horizontal flips."""
    b, _, h, w = x.shape
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))
        offs = torch.randint(0, 2 * pad + 1, (b, 2), generator=gen)
        x = torch.stack([padded[i, :, oy : oy + h, ox : ox + w] for i, (oy, ox) in enumerate(offs.tolist())])
    if hflip:
        flip = torch.rand(b, generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def warmup_steps(total: int, settings: PretrainSettings) -> int:
    """Linear warmup steps of a run of ``total`` steps (``settings.warmup_steps``, at most ``total - 1``)."""
    return min(settings.warmup_steps, max(total - 1, 0))


def lr_at(step: int, total: int, settings: PretrainSettings) -> float:
    """Learning rate of a step: linear warmup, then cosine decay to 0 over the remaining steps."""
    warm = warmup_steps(total, settings)
    if step < warm:
        return settings.lr * (step + 1) / warm
    frac = (step - warm) / max(total - warm, 1)
    return settings.lr * 0.5 * (1.0 + math.cos(math.pi * frac))


@torch.no_grad()
def evaluate(model: nn.Module, corpus: Corpus, mean: torch.Tensor, std: torch.Tensor, batch: int = 256) -> float:
    """Top-1 accuracy (0..1) on the corpus's evaluation split."""
    model.eval()
    correct = 0
    for i in range(0, len(corpus.eval_labels), batch):
        x = to_input(corpus.eval_images[i : i + batch], mean, std)
        pred = model(x).argmax(1).numpy()
        correct += int((pred == corpus.eval_labels[i : i + batch]).sum())
    return correct / len(corpus.eval_labels)


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _settings_dict(settings: PretrainSettings) -> dict[str, Any]:
    out = asdict(settings)
    out["betas"] = list(settings.betas)
    return out


def hardware() -> str:
    """The CPU this process may run on, e.g. ``'cpu x2 (x86_64, AMD EPYC ...)'``."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"cpu x{cpus} ({platform.machine()}, {cpu_model()})"


def pretrain(
    settings: PretrainSettings,
    out_dir: Path,
    corpus: Corpus,
    *,
    threads: int | None = None,
    log: Callable[[str], None] = print,
    stop_after_epoch: int | None = None,
    progress_steps: int | None = None,
) -> HubCard | None:
    """Pretrain, checkpointing every epoch, and write ``<out_dir>/<card_id>/`` (weights and card).

    Resumes from ``<out_dir>/<card_id>.partial/checkpoint.pt`` when it exists (same settings only).

    Args:
        settings: what to train (see :class:`PretrainSettings`).
        out_dir: the hub folder.
        corpus: the source data (see :data:`CORPORA`).
        threads: torch intra-op threads (``None`` = torch's default); recorded in the card.
        log: receives one progress line per epoch.
        stop_after_epoch: stop (checkpoint kept, no card) after this epoch; for tests of resuming.
        progress_steps: also log the mean train loss and CPU time every this many steps of an epoch.

    Returns:
        The card, or ``None`` when stopped early by ``stop_after_epoch``.

    Raises:
        HubCardError: bad settings, a finished card of this id exists, or a checkpoint with other settings.
    """
    per_epoch = validate(settings, corpus)
    out_dir = Path(out_dir)
    final = out_dir / settings.card_id
    if final.exists():
        raise HubCardError(f"{final} exists already; delete it to pretrain {settings.card_id} again")
    partial = out_dir / f"{settings.card_id}.partial"
    partial.mkdir(parents=True, exist_ok=True)
    if threads is not None:
        torch.set_num_threads(threads)
    timm = import_timm()
    with seeded_global_rngs(settings.seed):
        model = timm.create_model(settings.architecture, pretrained=False, num_classes=len(corpus.class_names))
    cfg = timm.data.resolve_data_config({}, model=model)
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay, betas=settings.betas
    )
    steps_per_epoch = per_epoch // settings.batch_size
    total_steps = steps_per_epoch * settings.epochs
    history: list[dict[str, float]] = []
    start_epoch, cpu_before, wall_before = 0, 0.0, 0.0
    ckpt_path = partial / CHECKPOINT
    if ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if ckpt["settings"] != _settings_dict(settings):
            raise HubCardError(
                f"{ckpt_path} was written with other settings ({ckpt['settings']}); rerun with those, "
                f"or delete {partial} to start over"
            )
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        history = ckpt["history"]
        start_epoch = len(history)
        cpu_before, wall_before = history[-1]["cpu_s"], history[-1]["wall_s"]
        log(f"{settings.card_id}: resuming after epoch {start_epoch}/{settings.epochs}")
    loss_fn = nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)
    for epoch in range(start_epoch, settings.epochs):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        rng = np.random.default_rng([settings.seed, epoch])
        order = rng.permutation(len(corpus.train_labels))[:per_epoch]
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        model.train()
        loss_sum = 0.0
        with seeded_global_rngs(int(rng.integers(2**62))):  # dropout / drop-path, if the architecture has any
            for b in range(steps_per_epoch):
                idx = np.sort(order[b * settings.batch_size : (b + 1) * settings.batch_size])
                x = augment(to_input(corpus.train_images[idx], mean, std), settings.pad, settings.hflip, gen)
                y = torch.from_numpy(corpus.train_labels[idx])
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(epoch * steps_per_epoch + b, total_steps, settings)
                loss = loss_fn(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.item()
                if progress_steps and (b + 1) % progress_steps == 0 and b + 1 < steps_per_epoch:
                    log(
                        f"{settings.card_id}: epoch {epoch + 1} step {b + 1}/{steps_per_epoch} "
                        f"loss {loss_sum / (b + 1):.4f} cpu {cpu_before + time.process_time() - cpu0:.0f}s"
                    )
        top1 = evaluate(model, corpus, mean, std)
        row = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / steps_per_epoch,
            "top1": top1,
            "cpu_s": cpu_before + time.process_time() - cpu0,
            "wall_s": wall_before + time.perf_counter() - wall0,
        }
        cpu_before, wall_before = row["cpu_s"], row["wall_s"]
        history.append(row)
        _atomic_save(
            {
                "settings": _settings_dict(settings),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "history": history,
            },
            ckpt_path,
        )
        log(
            f"{settings.card_id}: epoch {epoch + 1}/{settings.epochs} loss {row['train_loss']:.4f} "
            f"{corpus.eval_split} top-1 {top1:.4f} cpu {row['cpu_s']:.0f}s wall {row['wall_s']:.0f}s"
        )
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < settings.epochs:
            return None
    return _finish(settings, corpus, model, cfg, history, per_epoch, partial, final)


def _finish(
    settings: PretrainSettings,
    corpus: Corpus,
    model: nn.Module,
    data_cfg: dict[str, Any],
    history: list[dict[str, float]],
    per_epoch: int,
    partial: Path,
    final: Path,
) -> HubCard:
    """Write the weights and the card into ``partial``, then rename it to ``final``."""
    from safetensors.torch import save_file

    total = (per_epoch // settings.batch_size) * settings.epochs
    weights = partial / WEIGHTS_FILE
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights), metadata={"card_id": settings.card_id, "architecture": settings.architecture})
    channels = "grey replicated to 3 channels" if corpus.train_images.ndim == 3 else "RGB"
    card = HubCard(
        card_id=settings.card_id,
        architecture=settings.architecture,
        num_classes=len(corpus.class_names),
        class_names=corpus.class_names,
        source={
            "name": corpus.name,
            "description": corpus.description,
            "license": corpus.license,
            "split": corpus.train_split,
            "images_available": len(corpus.train_labels),
            "images_per_epoch": per_epoch,
            "resolution": settings.resolution,
            "input": f"{settings.resolution}x{settings.resolution} px, {channels}",
        },
        evaluation={"split": corpus.eval_split, "images": len(corpus.eval_labels), "top1": history[-1]["top1"]},
        recipe={
            "optimizer": "AdamW",
            "lr": settings.lr,
            "weight_decay": settings.weight_decay,
            "betas": list(settings.betas),
            "schedule": f"per-step cosine to 0 after {warmup_steps(total, settings)} linear warmup steps",
            "batch_size": settings.batch_size,
            "steps": total,
            "label_smoothing": settings.label_smoothing,
            "augmentation": (
                f"random {settings.resolution}-px crop of the image zero-padded by {settings.pad} px"
                + (", horizontal flip p=0.5" if settings.hflip else "")
                + "; no vertical flip, no colour change"
            ),
            "mean": [round(float(v), 6) for v in data_cfg["mean"]],
            "std": [round(float(v), 6) for v in data_cfg["std"]],
            "init": "random (timm default initialisation)",
            "seed": settings.seed,
        },
        epochs=settings.epochs,
        history=tuple(history),
        cost={
            "cpu_s": round(history[-1]["cpu_s"], 1),
            "wall_s": round(history[-1]["wall_s"], 1),
            "threads": torch.get_num_threads(),
            "hardware": hardware(),
        },
        packages=package_versions(),
        weights_sha256=sha256_file(weights),
        weights_bytes=weights.stat().st_size,
    )
    (partial / CHECKPOINT).unlink()
    write_card(partial, card)
    os.replace(partial, final)
    return card
