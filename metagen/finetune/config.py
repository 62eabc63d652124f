"""The finetuning run's configuration: a dataclass that is also the Hydra structured config.

``FinetuneConfig`` is what :func:`metagen.finetune.finetune` takes. The Hydra entry point
(``python -m metagen.finetune``) builds it from ``conf/finetune.yaml`` + ``conf/version/<v>.yaml``
+ command-line overrides; the schema registered here makes Hydra reject unknown keys and wrong types.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import MISSING

from metagen.versions import DEFAULT_EPOCHS, DEFAULT_VERSION, VERSIONS, register_resolver

PRETRAINED_CHOICES = ("auto", "hub", "file", "none")
CLOCK_CHOICES = ("wall", "process")


@dataclass
class TrainingSettings:
    """How a finetuning run trains, apart from what it trains (pipeline, dataset) and its cap: the settings
    one sweep shares among all its runs (``SweepConfig`` extends this class, as ``FinetuneConfig`` does).

    Attributes:
        store: learning-curve store the finished run is written into.
        version: dataset version the run belongs to (micro | mini | extended | any name); part of the run id.
        epochs: epochs to train (the run's budget, ``max_epochs`` in the store).
        schedule_epochs: length of the LR schedule and the LP-FT switch point (``schedule_epochs // 2``);
            independent of ``epochs`` so that a run stopped early follows the full run's schedule
            (the reference always used 50). A value other than 50 becomes part of the pipeline id.
        seed: seed of everything random in the run (sampling of missing hyperparameters included); in a
            sweep also the seed of the pipeline sampling.
        pretrained: ``auto`` (``weights_file`` if given, else the Hugging Face hub, else the architecture's
            card in ``hub_dir``, else an offline package), ``hub``, ``file`` (``weights_file``) or ``none``
            (random init; becomes part of the pipeline id).
        hub_dir: a local hub folder of pretrained-weight cards (``python -m metagen.hub``); ``auto`` uses the
            card of the model's architecture after the Hugging Face hub. ``None`` = no local hub.
        img_size: input resolution; ``None`` = the model's pretrained default (the reference's policy).
            Another value becomes part of the pipeline id.
        crop_scale_min: train recipe, smallest RandomResizedCrop area fraction; ``None`` = timm's ImageNet 0.08,
            raised to the dataset's declared ``min_crop_scale``.
        hflip: train recipe, horizontal-flip probability; ``None`` = 0.5, or 0 where the dataset declares no flips.
        color_jitter: train recipe, ColorJitter strength; ``None`` = 0.4, capped by the dataset's declaration.
            The recipe is stored with the run and joins the pipeline id where it differs from 0.08 / 0.5 / 0.4.
        device: ``auto`` (cuda if available, else cpu), ``cpu``, ``cuda``, ``cuda:N``.
        clock: how epoch times and the cap are measured: ``wall`` (seconds of wall-clock time, the reference's)
            or ``process`` (CPU seconds of the training process: on a shared CPU machine other load does not
            inflate them; needs device=cpu and num_workers=0). Stored with the run (``time_clock``).
        deterministic: deterministic algorithms (bit-identical curves on CPU, also across resumes).
        num_workers: data-loader worker processes (0 = load in the training process).
        num_threads: torch intra-op threads on CPU (``None`` = torch's default).
    """

    store: str = MISSING
    version: str = DEFAULT_VERSION
    epochs: int = DEFAULT_EPOCHS
    schedule_epochs: int = DEFAULT_EPOCHS
    seed: int = 0
    pretrained: str = "auto"
    hub_dir: str | None = None
    img_size: int | None = None
    crop_scale_min: float | None = None
    hflip: float | None = None
    color_jitter: float | None = None
    device: str = "auto"
    clock: str = "wall"
    deterministic: bool = False
    num_workers: int = 0
    num_threads: int | None = None

    def training_settings(self) -> dict[str, Any]:
        """The fields of :class:`TrainingSettings` as keyword arguments (e.g. of a ``FinetuneConfig``)."""
        return {f.name: getattr(self, f.name) for f in fields(TrainingSettings)}


@dataclass
class FinetuneConfig(TrainingSettings):
    """One finetuning run: a pipeline (model + hyperparameters) trained on one dataset with one seed.

    The fields shared with a sweep (store, version, epochs, schedule length, seed, weights, local hub, image
    size, train recipe, device, clock, determinism, workers, threads): :class:`TrainingSettings`. Its own:

    Attributes:
        dataset: folder of a Meta-Album-layout dataset (labels.csv, images/, info.json).
        model: timm name or paper alias of a model of the search space; ``None`` = sampled with ``seed``.
        cap_s: wall-clock cap of the run's epochs in seconds (accumulated across resumes); ``None`` = no cap.
        hp: hyperparameters given explicitly; the others are sampled from the search space with ``seed``.
        search_space: name of the search space under ``conf/search_spaces``.
        max_params_m: only sample models up to this many million parameters (``None`` = all).
        weights_file: a local state-dict file (.safetensors / .pth / .bin) of the model's timm architecture.
        min_batch_size: smallest batch size tried when halving on out-of-memory.
        checkpoint_dir: where ``<run_id>/`` checkpoints live; ``None`` = ``<store>.checkpoints`` beside the store.
        keep_checkpoint: keep the run's last checkpoint after the store write (e.g. to extend its budget in
            another store later); ``False`` (default) deletes it once the run is stored. Until then it is
            kept, so an interrupted run resumes either way.
    """

    dataset: str = MISSING
    model: str | None = None
    cap_s: float | None = VERSIONS[DEFAULT_VERSION].cap_s
    hp: dict[str, Any] = field(default_factory=dict)
    search_space: str = "v1"
    max_params_m: float | None = None
    weights_file: str | None = None
    min_batch_size: int = 4
    checkpoint_dir: str | None = None
    keep_checkpoint: bool = False


def register_configs() -> None:
    """Register ``FinetuneConfig`` as the schema ``finetune_schema`` in Hydra's ConfigStore (and the
    ``version_table`` resolver of ``conf/version/<v>.yaml``)."""
    from hydra.core.config_store import ConfigStore

    register_resolver()

    ConfigStore.instance().store(name="finetune_schema", node=FinetuneConfig)


with contextlib.suppress(ImportError):  # registered at import when Hydra is installed (optional for library use)
    register_configs()
