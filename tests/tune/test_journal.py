"""The session journal and the trace of observed epochs (no training)."""

from __future__ import annotations

from pathlib import Path

import pytest

from metagen.tune.journal import Journal
from metagen.tune.session import Trace
from metagen.tune.worker import EpochRow


def test_journal_keeps_order_and_ignores_a_torn_last_line(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.jsonl")
    assert j.start is None and j.time_used() == 0.0
    j.append("start", dataset="D")
    j.append("step", pipeline=3, ask=2, epochs=[1, 2], t=12.5)
    j.append("clock", t=20.0)
    with open(tmp_path / "journal.jsonl", "a") as f:
        f.write('{"kind": "step", "pipel')  # killed mid-write
    again = Journal(tmp_path / "journal.jsonl")
    assert again.start == {"kind": "start", "dataset": "D"}
    assert [s["pipeline"] for s in again.of("step")] == [3]
    assert again.time_used() == 20.0 and again.finished is None
    again.append("clock", t=25.0)  # the torn line was cut: the next line is whole
    assert [e["kind"] for e in Journal(tmp_path / "journal.jsonl").entries] == ["start", "step", "clock", "clock"]


def test_trace_places_a_steps_epochs_by_their_costs() -> None:
    t = Trace()
    t.add(10.0, 2, [EpochRow(1, 0.5, 3.0), EpochRow(2, float("nan"), 4.0)])
    t.add(11.0, 0, [EpochRow(1, 0.4, 1.0)])
    assert t.time == pytest.approx([6.0, 10.0, 11.0])
    assert t.incumbent() == (2, 1, 0.5)
    assert Trace().incumbent() is None
