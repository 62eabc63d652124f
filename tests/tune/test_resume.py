"""A killed and relaunched session decides as an uninterrupted one, for every method that can drive it
(a fake world: instant seeded curves, steps end in the order they started)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from benchmark.protocol import Ask, EpochResult, Optimizer
from metagen.tune import session
from metagen.tune.journal import Journal
from metagen.tune.session import Prepared, ResumeError, prepare, run_session
from tests.tune.conftest import tune_config
from tests.tune.fake_world import FakeDisk, FakeWorld, Killed

pytest.importorskip("torch")

GP = ("dyhpo", "quicktune", "quicktune-M", "quicktune-C", "quicktune-G")
METHODS = ("random_search", "asha", "hyperband", "bohb", "best_on_average", *GP)
"""Every registered method that can drive a session on the bundled store (``default_model`` cannot: its
model, XCiT, is not a candidate of the hub6 space)."""


BUILD = session.build_optimizer


class Spy:
    """Records every ``ask()`` of the optimizer it wraps."""

    def __init__(self, opt: Optimizer, asks: list[tuple[int, int] | None]):
        self.opt, self.asks = opt, asks

    def ask(self) -> Ask | None:
        a = self.opt.ask()
        self.asks.append(None if a is None else (a.pipeline, a.epoch))
        return a

    def on_epoch(self, result: EpochResult) -> bool:
        return self.opt.on_epoch(result)

    def tell(self, ask: Ask, results: Sequence[EpochResult]) -> None:
        self.opt.tell(ask, results)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, new_dataset: Path) -> dict[str, Prepared]:
    """One checked session per method (10 candidates, 9 epochs: ASHA's and Hyperband's rungs 1, 3, 9; a budget
    of 40 epochs, 16 for the GP methods that ask an epoch at a time, each ask refitting their surrogate)."""
    tmp = tmp_path_factory.mktemp("resume")
    budget = {m: "16ep" if m in GP and m != "quicktune-G" else "40ep" for m in METHODS}  # -G asks whole curves
    return {
        m: prepare(tune_config(tmp, new_dataset, method=m, budget=budget[m], candidates=10, epochs=9, out=None))
        for m in METHODS
    }


def launch(p: Prepared, out: Path, world: FakeWorld, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int] | None]:
    """Runs (or resumes) the session in ``out`` on ``world``; the optimizer's asks, in order."""
    asks: list[tuple[int, int] | None] = []
    monkeypatch.setattr(session, "build_optimizer", lambda q, progress=False: Spy(BUILD(q, progress), asks))
    pp = replace(p, out=out)
    with contextlib.suppress(Killed):
        run_session(pp.cfg, log=lambda s: None, prepared=pp, world=world)
    return asks


def trained_pairs(disk: FakeDisk, p: Prepared) -> list[tuple[int, int]]:
    index = {c.run_id: i for i, c in enumerate(p.candidates)}
    return [(index[r], e) for r, e in disk.trained]


def journal_asks(out: Path) -> list[Any]:
    return [(a["pipeline"], a.get("epoch"), a.get("target")) for a in Journal(out / "journal.jsonl").of("ask")]


CASES = [
    pytest.param(m, kill, marks=pytest.mark.slow if m in GP else (), id=f"{kill}-{m}")
    for m in METHODS
    for kill in ("step", "wait")
    if kill == "wait" or not m.startswith("quicktune-")  # the variants share Quick-Tune's code: one kill each
]


@pytest.mark.parametrize(("method", "kill"), CASES)
def test_resumed_session_asks_what_an_uninterrupted_one_asks(
    method: str, kill: str, prepared: dict[str, Prepared], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed halfway at a step's start (its ask journaled, nothing trained) or at two thirds in a wait (the
    steps in flight trained, not told), then relaunched."""
    p = prepared[method]
    disk = FakeDisk(p.epochs)
    world = FakeWorld(disk)
    whole = launch(p, tmp_path / "whole", world, monkeypatch)
    at = (
        {"kill_at_step": max(1, world.steps // 2)} if kill == "step" else {"kill_at_wait": max(1, 2 * world.waits // 3)}
    )
    killed_disk = FakeDisk(p.epochs)
    first = launch(p, tmp_path / "killed", FakeWorld(killed_disk, **at), monkeypatch)
    assert Journal(tmp_path / "killed" / "journal.jsonl").finished is None
    assert len(first) < len(whole)  # decisions are left to make after the kill
    resumed = launch(p, tmp_path / "killed", FakeWorld(killed_disk), monkeypatch)
    assert resumed == whole  # the replayed asks, then the same decisions as the uninterrupted session
    assert journal_asks(tmp_path / "killed") == journal_asks(tmp_path / "whole")
    pairs = trained_pairs(killed_disk, p)
    assert len(pairs) == len(set(pairs))  # no epoch trained twice
    assert sorted(pairs) == sorted(trained_pairs(disk, p))
    report, whole_report = (json.loads((tmp_path / d / "report.json").read_text()) for d in ("killed", "whole"))
    assert report["epochs_trained"] == whole_report["epochs_trained"] == len(pairs)
    assert report["stop"] == whole_report["stop"] and report["best"] == whole_report["best"]


def test_a_replay_that_disagrees_with_the_journal_is_refused(
    prepared: dict[str, Prepared], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = prepared["asha"]
    disk = FakeDisk(p.epochs)
    launch(p, tmp_path / "out", FakeWorld(disk, kill_at_wait=3), monkeypatch)
    trained = len(disk.trained)
    other = replace(p, cfg=replace(p.cfg, seed=5))  # another seed: ASHA draws other candidates
    monkeypatch.setattr(session, "_check_same_session", lambda p, start: None)
    with pytest.raises(ResumeError, match=r"replaying the journal, asha asked"):
        launch(other, tmp_path / "out", FakeWorld(disk), monkeypatch)
    assert len(disk.trained) == trained  # the refused relaunch trained nothing


def test_a_journal_without_asks_is_refused(
    prepared: dict[str, Prepared], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = prepared["random_search"]
    j = Journal(tmp_path / "out" / "journal.jsonl")
    j.append("start", **session._start_entry(replace(p, out=tmp_path / "out")))
    j.append("step", pipeline=0, ask=9, epochs=[1], t=3.0)
    with pytest.raises(ResumeError, match=r"older metagen\.tune"):
        launch(p, tmp_path / "out", FakeWorld(FakeDisk(p.epochs)), monkeypatch)


def test_a_session_whose_meta_store_changed_is_refused(
    prepared: dict[str, Prepared], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = prepared["random_search"]
    start = session._start_entry(replace(p, out=tmp_path / "out"))
    assert start["meta_store_hash"] == session.store_hash(p.cfg.meta_store)
    Journal(tmp_path / "out" / "journal.jsonl").append("start", **{**start, "meta_store_hash": "0" * 64})
    disk = FakeDisk(p.epochs)
    with pytest.raises(session.TuneConfigError, match=r"other contents of meta_store=.*000000000000 then"):
        launch(p, tmp_path / "out", FakeWorld(disk), monkeypatch)
    assert not disk.trained
