"""LoRA (Hu et al. 2021, arXiv 2106.09685) on the linear layers of a timm model: frozen W, trainable low-rank update.

An adapted ``nn.Linear`` computes ``W x + b + (alpha / r) * B (A x)`` with ``A`` (r x in) drawn like peft and the
LoRA reference code draw it (Kaiming-uniform, ``a = sqrt(5)``) and ``B`` (out x r) zero, so before the first step the
adapted model computes exactly what the base model does. The update lives on the adapted module itself: two
parameters ``lora_A`` / ``lora_B`` and a forward hook, no wrapper module. Module names, their order and the base
weights' state-dict keys therefore stay those of the base model (``pct_to_freeze`` counts the same modules;
checkpoints hold two more tensors per adapted layer). :func:`merged_state_dict` folds the update into ``W``.

Targets (hyperparameter ``lora_targets``): ``qkv``, the fused query-key-value projection of every attention block
(``*.attn.qkv`` of timm's ViT, DeiT, BEiT, XCiT, DINOv2, ...); ``linear``, every ``nn.Linear`` outside the head.
No LoRA dropout. Which parameters train is :mod:`metagen.finetune.freeze`'s decision (adapters always do).
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from metagen.finetune.errors import HyperparameterError
from metagen.finetune.models import head_names, is_head

LORA_PARAMS = ("lora_A", "lora_B")
TARGETS = ("qkv", "linear")


def is_lora_param(name: str) -> bool:
    """Whether a parameter name (dotted) is a LoRA adapter's ``lora_A`` / ``lora_B``."""
    return name.rsplit(".", 1)[-1] in LORA_PARAMS


def lora_targets(model: nn.Module, targets: str) -> list[str]:
    """Names of the ``nn.Linear`` modules that ``targets`` adapts (never the head).

    Raises:
        ValueError: an unknown ``targets`` or a model without such layers.
    """
    if targets not in TARGETS:
        raise ValueError(f"lora_targets={targets!r} is not allowed; allowed: {list(TARGETS)}")
    heads = head_names(model)
    names = [
        n
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and not is_head(n, heads) and (targets == "linear" or n.rsplit(".", 1)[-1] == "qkv")
    ]
    if not names:
        what = "fused attention qkv" if targets == "qkv" else "nn.Linear (outside the head)"
        raise ValueError(
            f"{type(model).__name__} has no {what} layer for LoRA; use a ViT-style model"
            + (" or lora_targets=linear" if targets == "qkv" else "")
        )
    return names


def _adapter(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(A, B, scale) of an adapted layer."""
    layer = cast(Any, module)
    return layer.lora_A, layer.lora_B, float(layer.lora_scale)


def _lora_hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
    a, b, scale = _adapter(module)
    return output + F.linear(F.linear(inputs[0], a), b) * scale


def apply_lora(model: nn.Module, rank: int, alpha: float, targets: str = "qkv") -> list[str]:
    """Add LoRA adapters of ``rank`` and scale ``alpha / rank`` to the ``targets`` layers; returns their names.

    Draws ``A`` from torch's global generator (the runner seeds it), so call it once per model build.
    """
    if rank < 1:
        raise ValueError(f"lora_rank={rank} must be >= 1 to add adapters (0 means no LoRA)")
    names = lora_targets(model, targets)
    modules = dict(model.named_modules())
    for name in names:
        layer = modules[name]
        assert isinstance(layer, nn.Linear)
        a = torch.empty(rank, layer.in_features, dtype=layer.weight.dtype, device=layer.weight.device)
        nn.init.kaiming_uniform_(a, a=math.sqrt(5))
        layer.register_parameter("lora_A", nn.Parameter(a))
        b = torch.zeros(layer.out_features, rank, dtype=a.dtype, device=a.device)
        layer.register_parameter("lora_B", nn.Parameter(b))
        cast(Any, layer).lora_scale = float(alpha) / rank
        layer.register_forward_hook(_lora_hook)
    return names


def add_lora(model: nn.Module, model_name: str, hps: dict[str, Any]) -> list[str]:
    """:func:`apply_lora` with the run's ``lora_rank``, ``lora_alpha`` and ``lora_targets`` (default ``qkv``).

    Raises:
        HyperparameterError: the model has no layer the targets name.
    """
    targets = str(hps.get("lora_targets") or "qkv")
    try:
        return apply_lora(model, int(hps["lora_rank"]), float(hps["lora_alpha"]), targets)
    except ValueError as e:
        raise HyperparameterError(f"model {model_name}: {e}") from e


def merged_state_dict(model: nn.Module) -> dict[str, Any]:
    """The model's state dict with every adapter folded into its layer (``W + scale * B A``) and the ``lora_*``
    entries dropped: loadable into the base architecture."""
    state = model.state_dict()
    out: dict[str, Any] = {k: v for k, v in state.items() if not is_lora_param(k)}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and hasattr(module, "lora_A"):
            a, b, scale = _adapter(module)
            delta = (b @ a) * scale
            out[f"{name}.weight"] = (module.weight + delta).detach().clone()
    return out
