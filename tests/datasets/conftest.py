"""Tiny Meta-Album folders written in-process with PIL (independent of the generators under test)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_metaalbum(
    root: Path,
    counts: dict[str, int],
    *,
    size: tuple[int, int] = (20, 20),
    info: dict | None = None,
    columns: tuple[str, str] = ("FILE_NAME", "CATEGORY"),
    ext: str = ".png",
    mode: str = "RGB",
) -> list[tuple[str, str]]:
    """Write a Meta-Album folder with ``counts[class]`` images per class; returns the (file, class) rows."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    k = 0
    for cls, n in counts.items():
        for _ in range(n):
            name = f"im{k:03d}{ext}"
            channels = {"RGB": 3, "L": 1}[mode]
            arr = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
            Image.fromarray(arr.squeeze(-1) if channels == 1 else arr, mode).save(root / "images" / name)
            rows.append((name, cls))
            k += 1
    with (root / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([columns[0], columns[1], "SUPER_CATEGORY"])
        w.writerows([n, c, "NaN"] for n, c in rows)
    (root / "info.json").write_text(json.dumps({"dataset_name": "tiny", **(info or {})}))
    return rows


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """3 classes x 10 images of 20 x 20 px."""
    root = tmp_path / "tiny"
    write_metaalbum(root, {"cat": 10, "ant": 10, "bee": 10})
    return root
