"""``python -m metagen.sweep``: clear errors and exit code 2 for bad input, dry runs that write nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from metagen.sweep.cli import CONF_DIR, run

TINY = ["hub.models=[dla46x_c]", "pipelines_per_dataset=2", "epochs=2", "img_size=32", "pretrained=none", "device=cpu"]


def composed_run(*overrides: str) -> int:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        node = compose(config_name="sweep", overrides=list(overrides))
    return run(node)


def test_dry_run_plans_and_writes_nothing(tmp_path: Path, tiny_data: Path, capsys: pytest.CaptureFixture) -> None:
    rc = composed_run(f"store={tmp_path / 'store'}", f"datasets=[{tiny_data}]", "dry_run=true", "cluster=slurm",
                      "cluster.gpus_per_node=0", "cluster.cpus_per_task=1", "cluster.mem_gb=1",
                      "cluster.check_resources=false", "cluster.runs_per_job=3", *TINY)  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "2 dataset(s) x 2 pipeline(s) = 4 runs" in out and "2 array task(s)" in out and "dry run" in out
    assert list(tmp_path.iterdir()) == []


def test_include_defaults_plans_one_default_pipeline_per_model_and_dataset(
    tmp_path: Path, tiny_data: Path, capsys: pytest.CaptureFixture
) -> None:
    rc = composed_run(f"store={tmp_path / 'store'}", f"datasets=[{tiny_data}]", "dry_run=true", "cluster=local",
                      "include_defaults=true", *TINY)  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "2 dataset(s) x 2 pipeline(s) + default pipelines = 6 runs" in out  # 1 model: 2 x (2 + 1)
    assert list(tmp_path.iterdir()) == []


def test_dry_run_plans_without_slurm_commands(
    tmp_path_factory: pytest.TempPathFactory, tiny_data: Path, capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A machine without SLURM (no sbatch/sinfo/squeue/srun on the PATH) can still plan a cluster=slurm sweep."""
    monkeypatch.setenv("PATH", str(tmp_path_factory.mktemp("empty-bin")))
    work = tmp_path_factory.mktemp("dry")
    rc = composed_run(f"store={work / 'store'}", f"datasets=[{tiny_data}]", "dry_run=true", "cluster=slurm",
                      "cluster.runs_per_job=3", *TINY)  # fmt: skip
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "2 array task(s)" in out and "dry run" in out
    assert "not on the PATH" in err and "planned without checking" in err
    assert list(work.iterdir()) == []
    rc = composed_run(f"store={work / 'store'}", f"datasets=[{tiny_data}]", "cluster=slurm", *TINY)
    assert rc == 2 and "sbatch/sinfo/squeue/srun not on the PATH" in capsys.readouterr().err  # a real launch
    assert list(work.iterdir()) == []


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("hub.models=[resnet9000]", "unknown model"),
        ("cluster.processes=0", "cluster.processes=0 must be positive"),
        ("datasets=[/no/such/dataset]", "does not exist"),
    ],
)
def test_bad_input_exits_2(
    tmp_path: Path, tiny_data: Path, capsys: pytest.CaptureFixture, override: str, message: str
) -> None:
    rc = composed_run(f"store={tmp_path / 'store'}", f"datasets=[{tiny_data}]", *TINY, override)
    assert rc == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_missing_store_is_named(capsys: pytest.CaptureFixture) -> None:
    assert composed_run("datasets=[x]") == 2
    assert "store" in capsys.readouterr().err


def test_the_module_entry_point(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "metagen.sweep", f"store={tmp_path / 'store'}", "datasets=[/no/such/dataset]"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "dataset path '/no/such/dataset' does not exist" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # Hydra wrote nothing into the working directory
