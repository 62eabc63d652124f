"""``executor=slurm``: job-array parameters, outcome collection (fake submitit), and a real local SLURM run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import polars as pl
import pytest

from benchmark import slurm
from benchmark.config import RunConfig, SlurmConfig
from benchmark.results import cell_files
from benchmark.runner import run_benchmark


def config(store: Path, out: Path, **kw: Any) -> RunConfig:
    base: dict[str, Any] = {"methods": ["random_search", "asha"], "seeds": [0], "budget_s": 1500.0, "progress": False}
    return RunConfig(store=str(store), out=str(out), **{**base, **kw})


def test_chunks_and_parameters() -> None:
    assert slurm.chunks(list(range(5)), 2) == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError, match="cells_per_job"):
        slurm.chunks([1], 0)
    cfg = SlurmConfig(partition="cpu", cells_per_job=4, time_min_per_cell=2.5, cpus_per_task=2, mem_gb=1.5,
                      setup=["source venv/bin/activate"], additional_parameters={"constraint": "x"})  # fmt: skip
    p = slurm.slurm_parameters(cfg, 4, "bench")
    assert (p["time"], p["mem"], p["cpus_per_task"], p["partition"]) == (10, "1536MB", 2, "cpu")
    assert p["setup"] == ["export OMP_NUM_THREADS=2", "source venv/bin/activate"]
    assert "account" not in p and p["additional_parameters"] == {"constraint": "x"}
    with pytest.raises(ValueError, match="must be positive"):
        slurm.slurm_parameters(SlurmConfig(mem_gb=0), 1, "bench")


class FakeJob:
    def __init__(self, job_id: str, fn: Any, arg: Any, fail: bool):
        self.job_id, self.fn, self.arg, self.fail = job_id, fn, arg, fail
        self.paths = type("P", (), {"stderr": Path(f"/logs/{job_id}.err")})()

    def done(self) -> bool:
        return True

    def result(self) -> Any:
        if self.fail:
            raise RuntimeError("Job 7_1 (task: 0) with path /x\nhas not produced any output (state: CANCELLED)")
        return self.fn(self.arg)


class FakeExecutor:
    """Runs array tasks in-process when their result is asked for; the second task 'is cancelled'."""

    params: ClassVar[dict[str, Any]] = {}

    def __init__(self, folder: Path, max_num_timeout: int):
        self.folder = folder

    def update_parameters(self, **kw: Any) -> None:
        FakeExecutor.params = kw

    def map_array(self, fn: Any, groups: list[Any]) -> list[FakeJob]:
        return [FakeJob(f"7_{i}", fn, g, fail=i == 1) for i, g in enumerate(groups)]


def test_a_cancelled_task_fails_only_its_unfinished_cells(
    bench_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    submitit = pytest.importorskip("submitit")

    monkeypatch.setattr(submitit, "SlurmExecutor", FakeExecutor)
    out = tmp_path / "res"
    summary = run_benchmark(config(bench_store, out, executor="slurm", slurm=SlurmConfig(cells_per_job=2)))
    assert summary.planned == 6 and summary.done == 4 and len(summary.failed) == 2
    assert all("SLURM job 7_1 failed" in str(f.error) and "CANCELLED" in str(f.error) for f in summary.failed)
    assert all(Path(f.job.store).is_absolute() and Path(f.job.out).is_absolute() for f in summary.failed)
    assert FakeExecutor.params["time"] == 10 and FakeExecutor.params["job_name"] == "benchmark-run"
    again = run_benchmark(config(bench_store, out, executor="slurm", slurm=SlurmConfig(cells_per_job=1)))
    assert (again.skipped, again.done, len(again.failed)) == (4, 1, 1)  # task 1 of 2 is 'cancelled' again
    local = run_benchmark(config(bench_store, out))
    assert (local.skipped, local.done) == (5, 1) and len(cell_files(out)) == 6


@pytest.mark.slurm
def test_a_real_job_array_writes_the_same_files_as_a_local_run(
    slurm_cluster: None, bench_store: Path, tmp_path: Path
) -> None:
    cfg = SlurmConfig(cells_per_job=4, mem_gb=1.0, time_min_per_cell=2, folder=str(tmp_path / "logs"))
    on_slurm = run_benchmark(config(bench_store, tmp_path / "slurm", executor="slurm", slurm=cfg))
    assert (on_slurm.done, on_slurm.failed) == (6, [])
    assert len(list((tmp_path / "logs").glob("*/*_0_log.out"))) == 2  # two array tasks of 4 + 2 cells
    run_benchmark(config(bench_store, tmp_path / "local"))
    remote, here = cell_files(tmp_path / "slurm"), cell_files(tmp_path / "local")
    assert [p.relative_to(tmp_path / "slurm") for p in remote] == [p.relative_to(tmp_path / "local") for p in here]
    for a, b in zip(remote, here, strict=True):
        assert pl.read_parquet(a).equals(pl.read_parquet(b)), a
