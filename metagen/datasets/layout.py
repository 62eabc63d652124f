"""Reading the three parts of a Meta-Album dataset folder: ``info.json``, ``labels.csv`` and the image files.

Tolerated Meta-Album quirks (see docs/datasets.md): ``info.json`` keys ``image_column_name`` and
``category_column_name`` rename the label columns; a trailing comma in ``info.json`` (as in Meta-Album's own
README example); a UTF-8 byte-order mark and blanks around ``labels.csv`` cells; images directly in the dataset
folder when there is no ``images/`` folder; upper-case extensions (``.JPG``).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from metagen.datasets.errors import InfoError, LabelsError, LayoutError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""Extensions Quick-Tune reads (compared case-insensitively); other files in ``images/`` are ignored."""

DEFAULT_IMAGE_COLUMN = "FILE_NAME"
DEFAULT_CATEGORY_COLUMN = "CATEGORY"

_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def read_info(root: Path) -> dict[str, Any]:
    """Contents of ``root/info.json`` (a JSON object)."""
    path = root / "info.json"
    if not path.is_file():
        raise LayoutError(
            f"{path} is missing. A Meta-Album dataset folder holds info.json, labels.csv and images/; "
            f"write an info.json with at least {{'dataset_name': ...}} or regenerate the dataset."
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InfoError(f"cannot read {path}: {e}; it must be a UTF-8 JSON file") from e
    try:
        info = json.loads(text)
    except json.JSONDecodeError as first:
        try:  # Meta-Album's README example ends its object with a trailing comma
            info = json.loads(_TRAILING_COMMA.sub(r"\1", text))
        except json.JSONDecodeError:
            raise InfoError(f"{path} is not valid JSON ({first}); fix the file or regenerate the dataset") from first
    if not isinstance(info, dict):
        raise InfoError(f"{path} must hold a JSON object, found {type(info).__name__}")
    return info


def label_columns(info: dict[str, Any], info_path: Path) -> tuple[str, str]:
    """(image column, category column) named by ``info.json`` or the Meta-Album defaults."""
    cols = []
    for key, default in (
        ("image_column_name", DEFAULT_IMAGE_COLUMN),
        ("category_column_name", DEFAULT_CATEGORY_COLUMN),
    ):
        value = info.get(key, default)
        if value is None:
            value = default
        if not isinstance(value, str) or not value.strip():
            raise InfoError(f"{info_path}: '{key}' must be a non-empty column name of labels.csv, got {value!r}")
        cols.append(value.strip())
    return cols[0], cols[1]


def read_labels(root: Path, image_column: str, category_column: str) -> dict[str, str]:
    """Map file name -> category from ``root/labels.csv``, in file order."""
    path = root / "labels.csv"
    if not path.is_file():
        raise LayoutError(
            f"{path} is missing. A Meta-Album dataset folder holds labels.csv (columns {image_column}, "
            f"{category_column}), info.json and images/."
        )
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise LabelsError(f"cannot read {path}: {e}; it must be a UTF-8 comma-separated file") from e
    if not rows:
        raise LabelsError(f"{path} is empty; it needs a header row with {image_column},{category_column}")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in (image_column, category_column) if c not in header]
    if missing:
        raise LabelsError(
            f"{path} has no column(s) {missing}; its header is {header}. Rename the columns to "
            f"{image_column},{category_column} or name yours in info.json keys 'image_column_name' and "
            f"'category_column_name'."
        )
    i_img, i_cat = header.index(image_column), header.index(category_column)
    labels: dict[str, str] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank line
        if len(row) <= max(i_img, i_cat):
            raise LabelsError(f"{path} line {line_no} has {len(row)} cells, fewer than the header: {row}")
        name, category = row[i_img].strip(), row[i_cat].strip()
        if not name or not category:
            raise LabelsError(f"{path} line {line_no}: empty {image_column} or {category_column} in {row}")
        if Path(name).name != name:
            raise LabelsError(
                f"{path} line {line_no}: {image_column} must be a bare file name inside images/, got {name!r}"
            )
        if name in labels:
            raise LabelsError(f"{path} line {line_no}: {name!r} is listed twice; keep one row per image")
        labels[name] = category
    if not labels:
        raise LabelsError(f"{path} has a header but no rows; list one row per image")
    return labels


def image_folder(root: Path, labels: dict[str, str]) -> Path:
    """``root/images``, or ``root`` itself when it has no ``images/`` but holds the labelled files."""
    images = root / "images"
    if images.is_dir():
        return images
    first = next(iter(labels))
    if (root / first).is_file():
        return root  # Meta-Album's README allows the images beside labels.csv
    raise LayoutError(
        f"{root} has no images/ folder (and {first!r}, the first file in labels.csv, is not in {root} either). "
        f"Put the images in {images}."
    )


def list_images(folder: Path) -> list[str]:
    """Names of the image files in ``folder``, sorted (Quick-Tune's fixed order: ``sorted(glob('images/*.*'))``).

    Hidden files (``glob`` skips them) and other extensions are left out.
    """
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )
