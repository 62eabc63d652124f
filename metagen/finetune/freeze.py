"""``pct_to_freeze``: freeze the first fraction of a model's parameterised modules (reference §2.1.3).

Derived generically: the head is what ``pretrained_cfg['classifier']`` names (its top-level module),
the order is ``named_modules()`` (definition order). Every non-head module that holds parameters
(directly or below it) gets a running position ``pos`` = 1..N; a parameter is trainable iff
``pos / N > pct_to_freeze`` for the module that owns it. The head is always trainable, so
``pct_to_freeze=1`` is linear probing and ``0`` is full finetuning. Parameters owned by the model
itself (``cls_token``, ``pos_embed``) take the position of the first counted module. LoRA adapters
(:mod:`metagen.finetune.lora`, parameters of the layer they adapt) always train, like the head; the layer's own
weights follow the rule above.
"""

from __future__ import annotations

from torch import nn

from metagen.finetune.lora import is_lora_param
from metagen.finetune.models import head_names, is_head


def trainable_mask(model: nn.Module, pct_to_freeze: float) -> dict[str, bool]:
    """For every parameter name: whether it is trained at this ``pct_to_freeze`` (in [0, 1])."""
    if not 0.0 <= pct_to_freeze <= 1.0:
        raise ValueError(f"pct_to_freeze={pct_to_freeze} is not a fraction in [0, 1]")
    heads = head_names(model)
    body = [(n, m) for n, m in model.named_modules() if n and not is_head(n, heads)]
    counted = [any(True for _ in m.parameters()) for _, m in body]
    n_counted = sum(counted)
    mask: dict[str, bool] = {}
    pos = 0
    first_pos_trainable = n_counted > 0 and 1 / n_counted > pct_to_freeze
    for (name, module), is_counted in zip(body, counted, strict=True):
        pos += int(is_counted)
        for pname, _ in module.named_parameters(recurse=False):
            mask[f"{name}.{pname}"] = is_lora_param(pname) or pos / n_counted > pct_to_freeze
    for name, _ in model.named_parameters():
        if is_head(name, heads):
            mask[name] = True
        elif name not in mask:  # owned by the root model
            mask[name] = first_pos_trainable
    return mask


def apply_freeze(model: nn.Module, pct_to_freeze: float) -> int:
    """Set ``requires_grad`` by :func:`trainable_mask`; returns the number of trainable tensors."""
    mask = trainable_mask(model, pct_to_freeze)
    for name, p in model.named_parameters():
        p.requires_grad_(mask[name])
    return sum(mask.values())
