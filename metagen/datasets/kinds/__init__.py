"""The dataset generator kinds, by name."""

from __future__ import annotations

from metagen.datasets.kinds import characters, digits, fashion_mnist, shapes, textures
from metagen.datasets.kinds.base import Generated, Kind

KIND_SPECS: dict[str, Kind] = {k.name: k for k in (fashion_mnist.KIND, digits.KIND, textures.KIND,
                                                   characters.KIND, shapes.KIND)}  # fmt: skip
KINDS: tuple[str, ...] = tuple(KIND_SPECS)

__all__ = ["KINDS", "KIND_SPECS", "Generated", "Kind"]
