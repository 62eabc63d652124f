"""Per-epoch checkpoints of a run, written atomically, and reading them back for a resume.

One file per run, ``<checkpoint_dir>/<run_id>/last.pt``, replaced after every epoch (temp file +
``os.replace``): model, optimizer, scheduler (with the plateau scheduler's full state), AMP scaler,
torch RNG states, batch size, elapsed time, the curve so far and a fingerprint of the pipeline.
The data order and augmentations of an epoch derive from ``(seed, epoch)`` and need no state.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch

from metagen.finetune.errors import CheckpointMismatchError

FORMAT = 1
FILENAME = "last.pt"


def run_dir(checkpoint_dir: str | Path, run_id: str) -> Path:
    """The folder of a run's checkpoint."""
    return Path(checkpoint_dir) / run_id


def save(path_dir: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` as ``path_dir/last.pt`` atomically (a reader sees the old or the new file whole)."""
    path_dir.mkdir(parents=True, exist_ok=True)
    final = path_dir / FILENAME
    tmp = path_dir / f".{FILENAME}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def load(path_dir: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint in ``path_dir`` (``None`` if there is none), checked against ``fingerprint``.

    Raises:
        CheckpointMismatchError: it belongs to another pipeline setup (named in the message), or it
            is unreadable (then the message says to delete it).
    """
    final = path_dir / FILENAME
    if not final.is_file():
        return None
    try:
        state = torch.load(final, map_location="cpu", weights_only=False)  # our own file, see save()
    except Exception as e:
        raise CheckpointMismatchError(
            f"checkpoint {final} is unreadable ({e}); delete it to start the run afresh"
        ) from e
    if state.get("format") != FORMAT:
        raise CheckpointMismatchError(f"checkpoint {final} has format {state.get('format')}, expected {FORMAT}")
    stored = state.get("fingerprint", {})
    diff = sorted(k for k in set(stored) | set(fingerprint) if stored.get(k) != fingerprint.get(k))
    if diff:
        detail = ", ".join(f"{k}: checkpoint {stored.get(k)!r} vs now {fingerprint.get(k)!r}" for k in diff)
        raise CheckpointMismatchError(
            f"checkpoint {final} was written by another setup ({detail}); use another checkpoint_dir or delete it"
        )
    return state


def remove(path_dir: Path) -> None:
    """Delete a run's checkpoint folder."""
    shutil.rmtree(path_dir, ignore_errors=True)
