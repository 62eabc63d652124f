"""Importing timm safely: the torchvision op shim a CPU torch needs before ``import timm``.

The PyPI torchvision wheel is a CUDA build; with a CPU-only torch its C extension does not load
and ``import torchvision`` dies with ``operator torchvision::nms does not exist``. Defining the two
op schemas that torchvision registers unconditionally fixes the import (the C ops themselves stay
unavailable; nothing here needs them). With a working torchvision the definitions already exist
and the shim does nothing.
"""

from __future__ import annotations

import contextlib
from types import ModuleType

_SCHEMA = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
_installed = False


def install_torchvision_shim() -> None:
    """Define ``torchvision::nms`` / ``torchvision::qnms`` unless they exist (idempotent)."""
    global _installed
    if _installed:
        return
    import torch

    for name in ("nms", "qnms"):
        # RuntimeError: already defined (a working torchvision _C is loaded, or defined before)
        with contextlib.suppress(RuntimeError):
            torch.library.define(f"torchvision::{name}", _SCHEMA)
    _installed = True


def import_timm() -> ModuleType:
    """The ``timm`` module (with ``data``, ``loss``, ``models``, ``optim``, ``scheduler``, ``utils`` loaded),
    imported after installing the torchvision shim."""
    install_torchvision_shim()
    import timm
    import timm.data
    import timm.loss
    import timm.models
    import timm.optim
    import timm.scheduler
    import timm.utils

    return timm
