"""The one ``flock`` context manager of the project (store maintenance, sweep runs, sweep launches).

An ``flock`` is held by an open file: the kernel drops it when its process dies, so a killed job never
leaves anything locked. Imports nothing of the project.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive_lock(path: str | Path) -> Iterator[bool]:
    """Try to take an exclusive lock on ``path`` (created if missing) without waiting.

    Yields:
        Whether this process holds the lock; ``False`` when another one holds it (then nothing is held).
    """
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
