"""The session journal: an append-only JSON-lines file in the output folder that records the order of the
optimizer's asks and tells and the time used. Accuracies and costs are not taken from it on resume: they are
read back from the store and the checkpoints (the source of truth); the journal gives the order to replay.

Lines: ``start`` (the session's settings and candidates), ``ask`` (every ``ask()`` of the optimizer that is
not a lookup, before its step starts: pipeline, asked epoch, the step's start and target epochs; ``pipeline:
null`` for a ``None``), ``step`` (a told step: pipeline, asked epoch, epochs it trained, stored status, error,
session seconds at its end), ``clock`` (session seconds used so far), ``finish``. A line is written whole with
one ``write`` + ``fsync``; a torn last line from a kill is cut off when the journal is opened.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class Journal:
    """Reads and appends the journal at ``path``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.entries: list[dict[str, Any]] = []
        if self.path.is_file():
            text = self.path.read_text()
            if text and not text.endswith("\n"):  # a line torn by a kill: cut it, or the next line would join it
                text = text[: text.rfind("\n") + 1]
                with open(self.path, "r+") as f:
                    f.truncate(len(text.encode()))
            for line in text.splitlines():
                try:
                    self.entries.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line torn by a kill

    def append(self, kind: str, **data: Any) -> None:
        """Writes one line durably."""
        entry = {"kind": kind, **data}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.entries.append(entry)

    def of(self, kind: str) -> list[dict[str, Any]]:
        """Entries of one kind, in order."""
        return [e for e in self.entries if e.get("kind") == kind]

    @property
    def start(self) -> dict[str, Any] | None:
        """The session's start entry (``None`` for a new session)."""
        starts = self.of("start")
        return starts[0] if starts else None

    @property
    def finished(self) -> dict[str, Any] | None:
        """The finish entry, if the session ended."""
        done = self.of("finish")
        return done[-1] if done else None

    def time_used(self) -> float:
        """Session seconds used before this launch (the largest recorded)."""
        times = [float(e["t"]) for e in self.entries if "t" in e]
        return max(times, default=0.0)
