"""Sweep progress from the store, the plan, checkpoints and failure records."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from metagen.store import write_run
from metagen.sweep.job import failure_path
from metagen.sweep.plan import RunSpec
from metagen.sweep.record import PlanRecord, now_iso, write_plan
from metagen.sweep.status import collect_status, follow, format_status, main
from tests.factories import make_curve, make_run


def plan_for(store: Path, run_ids: list[tuple[str, str]]) -> PlanRecord:
    sweep_dir = store.parent / f"{store.name}.sweeps" / "s1"
    runs = tuple(RunSpec(rid, f"/d/{ds}", ds, "dla46x_c.in1k", {}, rid, 0, i) for i, (rid, ds) in enumerate(run_ids))
    record = PlanRecord("s1", str(store), "micro", runs, now_iso(), checkpoint_dir=str(sweep_dir / "checkpoints"),
                        sweep_dir=str(sweep_dir))  # fmt: skip
    write_plan(sweep_dir, record)
    return record


@pytest.fixture
def sweep_store(store: Path) -> tuple[Path, PlanRecord]:
    """A plan of 5 runs: 2 ok, 1 timeout stored; 1 with a checkpoint; 1 with a failure record; plus 1 foreign run."""
    plan = plan_for(store, [("r1", "PNU"), ("r2", "PNU"), ("r3", "BCT"), ("r4", "BCT"), ("r5", "BCT")])
    write_run(store, make_run("r1", "PNU"), make_curve(5, cost=2.0))
    write_run(store, make_run("r2", "PNU"), make_curve(3, cost=4.0))
    write_run(store, make_run("r3", "BCT", status="timeout"), make_curve(2, cost=1.0))
    write_run(store, make_run("other", "BCT"), make_curve(7))
    (Path(plan.checkpoint_dir) / "r4").mkdir(parents=True)
    (Path(plan.checkpoint_dir) / "r4" / "last.pt").write_bytes(b"x")
    failure_path(plan.sweep_dir, "r5").parent.mkdir(parents=True)
    failure_path(plan.sweep_dir, "r5").write_text("{}")
    return store, plan


def test_collect_status_against_a_plan(sweep_store: tuple[Path, PlanRecord]) -> None:
    store, plan = sweep_store
    s = collect_status(store, plan)
    assert (s.planned, s.done, s.epochs) == (5, 3, 10)
    assert s.compute_s == pytest.approx(5 * 2.0 + 3 * 4.0 + 2 * 1.0)
    assert dict(s.datasets["PNU"].counts) == {"ok": 2}
    assert dict(s.datasets["BCT"].counts) == {"timeout": 1, "running": 1, "failed": 1}
    text = format_status(s)
    assert "progress: 3/5 runs (60.0 %)" in text and "0.007 h" in text


def test_collect_status_without_a_plan_counts_every_run(sweep_store: tuple[Path, PlanRecord]) -> None:
    store, _ = sweep_store
    s = collect_status(store)
    assert (s.done, s.epochs, s.planned) == (4, 17, 0)
    assert "no sweep plan" in format_status(s)


def test_cli_finds_the_plan_and_reports(sweep_store: tuple[Path, PlanRecord], capsys: pytest.CaptureFixture) -> None:
    store, _ = sweep_store
    assert main([str(store)]) == 0
    out = capsys.readouterr().out
    assert "sweep 's1'" in out and "running" in out and "failed" in out
    assert main([str(store), "--sweep", "nope"]) == 2
    assert "no sweep 'nope'" in capsys.readouterr().err
    assert main([str(store.parent / "missing"), "--follow"]) == 2


def test_follow_returns_when_every_planned_run_is_stored(sweep_store: tuple[Path, PlanRecord]) -> None:
    store, plan = sweep_store

    def finish() -> None:
        time.sleep(0.3)
        write_run(store, make_run("r4", "BCT"), make_curve(1))
        write_run(store, make_run("r5", "BCT", status="error", status_message="boom"), make_curve(0))

    t = threading.Thread(target=finish)
    t.start()
    s = follow(store, plan, interval_s=0.1)
    t.join()
    assert s.done == s.planned == 5 and s.totals["error"] == 1
