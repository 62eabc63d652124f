"""The job's per-run logic with a fake runner: failures isolated, requeues counted and bounded, locks."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from metagen.sweep import job as job_mod
from metagen.sweep.job import (
    RunSettings,
    SweepJob,
    add_requeue,
    failure_path,
    read_requeues,
    requeue_limit_message,
    run_lock,
    run_one,
)
from metagen.sweep.plan import RunSpec


@dataclass
class FakeResult:
    run_id: str
    status: str = "ok"
    n_epochs: int = 2
    resumed_from_epoch: int | None = None
    wrote_store: bool = True
    elapsed_s: float = 0.0
    message: str | None = None


class FakeInterrupted(Exception):
    pass


class FakeRunner:
    """Records the configs it gets; raises for run ids listed in ``fail``."""

    def __init__(self, fail: dict[str, BaseException] | None = None):
        self.fail = fail or {}
        self.configs: list[Any] = []
        self.finish: list[str | None] = []

    def __call__(self, cfg: Any, should_stop: Any = None, finish_as_timeout: str | None = None) -> FakeResult:
        self.configs.append(cfg)
        self.finish.append(finish_as_timeout)
        rid = cfg.hp["rid"]
        if rid in self.fail:
            raise self.fail[rid]
        return FakeResult(rid)


@pytest.fixture
def settings(tmp_path: Path) -> RunSettings:
    return RunSettings(
        store=str(tmp_path / "store"), version="micro", epochs=2, schedule_epochs=50, cap_s=60.0, pretrained="none",
        hub_dir=None, img_size=32, crop_scale_min=None, hflip=None, color_jitter=None, device="cpu", clock="wall",
        deterministic=True, num_workers=0, num_threads=1, keep_checkpoints=False, search_space="v1",
        checkpoint_dir=str(tmp_path / "ckpt"), sweep_dir=str(tmp_path / "sweep"), max_requeues=2,
    )  # fmt: skip


def spec(rid: str) -> RunSpec:
    return RunSpec(rid, "/data/ds", "ds", "dla46x_c.in1k", {"rid": rid}, "p" + rid, 0, 0)


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> FakeRunner:
    r = FakeRunner()
    monkeypatch.setattr(job_mod, "_load_runner", lambda: (r, FakeInterrupted))
    monkeypatch.setattr(job_mod, "finetune_config", lambda s, d, m, hp, seed: _Cfg(dict(hp), s.cap_s))
    return r


@dataclass
class _Cfg:
    hp: dict[str, Any]
    cap_s: float | None


def test_a_failing_run_is_recorded_and_the_job_goes_on(runner: FakeRunner, settings: RunSettings) -> None:
    runner.fail = {"b": FileNotFoundError("weights of dla46x_c unavailable offline")}
    out = SweepJob([spec("a"), spec("b"), spec("c")], settings)()
    assert [o["status"] for o in out] == ["ok", "failed", "ok"]
    assert "weights of dla46x_c" in out[1]["message"]
    record = json.loads(failure_path(settings.sweep_dir, "b").read_text())
    assert record["error"] == "FileNotFoundError" and "Traceback" in record["traceback"]
    runner.fail = {}
    assert run_one(spec("b"), settings).status == "ok"
    assert not failure_path(settings.sweep_dir, "b").exists()


def test_interrupts_and_submitit_give_up_are_not_swallowed(runner: FakeRunner, settings: RunSettings) -> None:
    from submitit.core.utils import UncompletedJobError

    runner.fail = {"a": FakeInterrupted("stop"), "b": UncompletedJobError("timed-out too many times")}
    with pytest.raises(FakeInterrupted):
        run_one(spec("a"), settings)
    with pytest.raises(UncompletedJobError):
        SweepJob([spec("b"), spec("c")], settings)()
    assert [c.hp["rid"] for c in runner.configs] == ["a", "b"]


def test_checkpoint_counts_the_current_run_and_requeues_the_same_runs(settings: RunSettings) -> None:
    job = SweepJob([spec("a"), spec("b")], settings)
    delayed = job.checkpoint()  # between runs: nothing to count
    assert read_requeues(settings.checkpoint_dir, "a") == 0
    job._started("b")
    delayed = job.checkpoint()
    assert read_requeues(settings.checkpoint_dir, "b") == 1
    assert isinstance(delayed.function, SweepJob) and delayed.function is not job
    assert delayed.function.runs == job.runs and delayed.function._current is None


def test_a_run_requeued_too_often_is_finished_as_timeout(runner: FakeRunner, settings: RunSettings) -> None:
    for _ in range(settings.max_requeues):
        add_requeue(settings.checkpoint_dir, "a")
    run_one(spec("a"), settings)
    assert runner.finish[-1] is None  # max_requeues requeues: still trained normally
    add_requeue(settings.checkpoint_dir, "a")
    outcome = run_one(spec("a"), settings)
    assert outcome.requeues == settings.max_requeues + 1
    assert runner.configs[-1].cap_s == settings.cap_s  # the run keeps its real cap in the store
    assert runner.finish[-1] == requeue_limit_message(settings.max_requeues + 1, settings.max_requeues)
    assert "max_requeues=2" in str(runner.finish[-1])


def test_a_run_held_by_another_process_is_skipped(runner: FakeRunner, settings: RunSettings) -> None:
    with run_lock(settings.checkpoint_dir, "a") as mine:
        assert mine
        # flock locks belong to open files: a second open in this process conflicts like another process would
        assert run_one(spec("a"), settings).status == "busy"
    assert run_one(spec("a"), settings).status == "ok"
    assert runner.configs and len(runner.configs) == 1


def test_settings_from_config(tmp_path: Path) -> None:
    from metagen.sweep.config import LocalClusterConfig, SweepConfig

    cfg = SweepConfig(store=str(tmp_path / "s"), datasets=["d"], version="mini", cluster=LocalClusterConfig())
    s = RunSettings.from_config(cfg)
    assert s.cap_s == 14400.0 and s.checkpoint_dir == str(tmp_path / "s.sweeps" / "sweep" / "checkpoints")
    assert RunSettings.from_config(replace(cfg, cap_s=10.0, checkpoint_dir=str(tmp_path / "c"))).cap_s == 10.0
