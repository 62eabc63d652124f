"""The Hydra command line, run as users run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from metagen.store import StoreReader

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "metagen.finetune", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


@pytest.mark.slow
def test_cli_trains_and_writes_the_run_without_touching_the_cwd(tiny_dataset, store, tmp_path):
    work = tmp_path / "cwd"
    work.mkdir()
    args = [f"dataset={tiny_dataset}", "model=edgenext_xx_small", f"store={store}", "epochs=1", "seed=3",
            "pretrained=none", "img_size=32", "num_threads=1", "version=mini", "hp.batch_size=8", "hp.lr=0.001",
            "hp.opt=adam", "hp.opt_betas='0.9 0.999'", "hp.layer_decay=null"]  # fmt: skip
    args.append(f"checkpoint_dir={tmp_path / 'ck'}")
    done = cli(*args, cwd=work)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout
    lines = done.stdout.splitlines()
    epoch = [line for line in lines if line.startswith("epoch 1/1  train loss ")]
    assert len(epoch) == 1 and "val top-1 " in epoch[0] and epoch[0].endswith(" s")  # one line per epoch
    assert any(line.startswith("final val top-1: ") for line in lines)
    assert not (tmp_path / "ck").exists() or not any((tmp_path / "ck").iterdir())  # checkpoint gone once stored
    run = StoreReader(store).scan_runs().collect().row(0, named=True)
    assert run["dataset_version"] == "mini" and run["time_cap_s"] == 14400.0 and run["seed"] == 3
    assert (
        run["lr"] == 0.001 and run["opt"] == "adam" and run["opt_betas"] == "0.9 0.999" and run["layer_decay"] is None
    )
    assert list(work.iterdir()) == []  # hydra wrote nothing into the working directory
    again = cli(*args, cwd=work)
    assert again.returncode == 0 and "already stored" in again.stdout
    assert StoreReader(store).scan_curves().collect().filter(pl.col("epoch") == 1).height == 1


@pytest.mark.slow
def test_cli_config_errors_exit_2_with_the_allowed_values(tiny_dataset, store, tmp_path):
    bad_model = cli(f"dataset={tiny_dataset}", f"store={store}", "model=resnet50", cwd=tmp_path)
    assert bad_model.returncode == 2 and "allowed" in bad_model.stderr and "dla46x_c.in1k" in bad_model.stderr
    bad_hp = cli(f"dataset={tiny_dataset}", f"store={store}", "model=dla46x_c", "hp.lr=0.2", cwd=tmp_path)
    assert bad_hp.returncode == 2 and "allowed values" in bad_hp.stderr
    no_data = cli(f"dataset={tmp_path / 'none'}", f"store={store}", "model=dla46x_c", cwd=tmp_path)
    assert no_data.returncode == 2 and "does not exist" in no_data.stderr
