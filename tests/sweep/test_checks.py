"""Bad input fails before anything is submitted, with a message naming the problem."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from metagen.sweep.checks import check_config, check_hub, check_slurm_request, check_writable, space_for_weights
from metagen.sweep.config import HubConfig, LocalClusterConfig, SlurmClusterConfig, SweepConfig
from metagen.sweep.errors import ClusterError, StoreNotWritableError, SweepConfigError
from metagen.sweep.launch import prepare
from metagen.sweep.slurm_info import parse_sinfo
from tests.sweep.conftest import tiny_config


def base(**kw: Any) -> SweepConfig:
    return replace(SweepConfig(store="/tmp/s", datasets=["/tmp/d"], cluster=SlurmClusterConfig()), **kw)


def test_check_config_lists_every_problem() -> None:
    cfg = base(
        pipelines_per_dataset=0,
        epochs=-1,
        cap_s=0.0,
        pretrained="imagenet",
        hub_dir="/nonexistent/hub",
        cluster=SlurmClusterConfig(gpus_per_node=-1, cpus_per_task=0, mem_gb=0, runs_per_job=0),
    )
    with pytest.raises(SweepConfigError) as e:
        check_config(cfg)
    msg = str(e.value)
    for needle in ("pipelines_per_dataset=0", "epochs=-1", "cap_s=0.0", "pretrained='imagenet'",
                   "hub_dir=/nonexistent/hub is not a folder", "gpus_per_node=-1", "cpus_per_task=0", "mem_gb=0",
                   "runs_per_job=0"):  # fmt: skip
        assert needle in msg


def test_check_config_accepts_defaults_and_rejects_a_non_cluster() -> None:
    check_config(base())
    check_config(base(cluster=LocalClusterConfig()))
    with pytest.raises(SweepConfigError, match="cluster=local"):
        check_config(base(cluster={"kind": "slurm"}))
    with pytest.raises(SweepConfigError, match="needs a GPU"):
        check_config(base(device="cuda", cluster=SlurmClusterConfig(gpus_per_node=0)))


def test_unknown_model_and_empty_hub() -> None:
    with pytest.raises(SweepConfigError, match=r"unknown model.*resnet9000"):
        check_hub(base(hub=HubConfig(models=["dla46x_c", "resnet9000"])))
    with pytest.raises(SweepConfigError, match="leaves no model"):
        check_hub(base(hub=HubConfig(max_params_m=0.5)))
    assert [m.name for m in check_hub(base(hub=HubConfig(max_params_m=1.3))).models] == [
        "mobilevit_xxs.cvnets_in1k",
        "dla46x_c.in1k",
    ]


def test_random_init_sweeps_never_sample_cotuning() -> None:
    space = check_hub(base())
    assert space_for_weights(space, "auto") is space
    hp = {h.name: h for h in space_for_weights(space, "none").hyperparameters}
    assert hp["cotuning_reg"].values == (0.0,)


def test_store_that_is_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreNotWritableError, match="is a file"):
        check_writable(blocker / "store", "store")
    if os.geteuid() == 0:  # root writes anywhere a normal file system allows; /proc refuses everyone
        target = Path("/proc/metagen-store")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "store"
    with pytest.raises(StoreNotWritableError, match="not writable"):
        check_writable(target, "store")
    check_writable(tmp_path / "new" / "store", "store")
    assert not (tmp_path / "new").exists()


def test_prepare_rejects_bad_input_before_submitting(
    tmp_path: Path, tiny_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SweepConfigError, match="does not exist"):
        prepare(tiny_config(tmp_path, tiny_data, datasets=[str(tmp_path / "nope")]))
    with pytest.raises(SweepConfigError, match="unknown model"):
        prepare(tiny_config(tmp_path, tiny_data, hub=HubConfig(models=["not_a_model"])))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(SweepConfigError, match="not a learning-curve store"):
        prepare(tiny_config(tmp_path, tiny_data, store=str(tmp_path / "junk")))
    monkeypatch.setattr("metagen.sweep.launch.missing_slurm_commands", lambda: ["sbatch"])
    with pytest.raises(ClusterError, match="sbatch"):
        prepare(tiny_config(tmp_path, tiny_data, cluster=SlurmClusterConfig(gpus_per_node=0)))
    assert not (tmp_path / "store").exists()  # nothing created by a failed launch


SINFO = """debug*|2|21694|(null)|infinite
gpu|64|515000|gpu:a100:4(S:0-1)|2-00:00:00
gpu|32|257000|gpu:a100:2|2-00:00:00
short|16+|64000|gpu:1,shard:4|30:00
"""


def test_resource_request_against_sinfo() -> None:
    parts, default = parse_sinfo(SINFO)
    assert default == "debug"
    assert (parts["gpu"].max_gpus, parts["gpu"].max_cpus, parts["gpu"].max_time_min) == (4, 64, 2880)
    assert parts["short"].max_gpus == 1 and parts["short"].max_cpus == 16
    ok = SlurmClusterConfig(partition="gpu", gpus_per_node=4, cpus_per_task=32, mem_gb=400)
    assert check_slurm_request(ok, 75, parts, default) == "gpu"
    assert check_slurm_request(replace(ok, partition=None, gpus_per_node=0, cpus_per_task=2, mem_gb=1), 75,
                               parts, default) == "debug"  # fmt: skip
    with pytest.raises(SweepConfigError, match=r"at most 4 GPUs"):
        check_slurm_request(replace(ok, gpus_per_node=8), 75, parts, default)
    with pytest.raises(SweepConfigError, match="not a partition"):
        check_slurm_request(replace(ok, partition="nope"), 75, parts, default)
    with pytest.raises(SweepConfigError) as e:
        check_slurm_request(replace(ok, partition="short", cpus_per_task=64, mem_gb=100), 75, parts, default)
    assert "at most 16 CPUs" in str(e.value) and "62.5 GB" in str(e.value) and "at most 30 min" in str(e.value)


def test_relaunch_with_another_seed_or_plan_is_refused(tmp_path: Path, tiny_data: Path) -> None:
    """A sweep name keeps its plan: another seed (or version, hub, ...) must not silently replace it."""
    from metagen.sweep.launch import plan_record
    from metagen.sweep.record import PlanRecord, write_plan

    cfg = tiny_config(tmp_path, tiny_data, dry_run=True)
    prep = prepare(cfg)
    write_plan(cfg.sweep_path(), plan_record(cfg, prep))  # as a launch writes it
    assert len(prepare(cfg).plan.runs) == 6  # the same command plans the same runs
    assert len(prepare(replace(cfg, pipelines_per_dataset=4)).plan.runs) == 8  # extending keeps every planned run
    with pytest.raises(SweepConfigError, match="already has a plan") as e:
        prepare(replace(cfg, seed=1))
    msg = str(e.value)
    assert "6 of its runs are not in the new plan" in msg and "seed: 0 -> 1" in msg
    assert "name=" in msg and "delete" in msg
    with pytest.raises(SweepConfigError, match="version: 'micro' -> 'mini'"):
        prepare(replace(cfg, version="mini"))
    assert prepare(replace(cfg, seed=1, name="other")).plan.runs  # another name keeps both plans
    assert len(PlanRecord.read(cfg.sweep_path() / "plan.json").runs) == 6  # the old plan is untouched


def test_read_only_store_is_refused_before_planning(tmp_path: Path, tiny_data: Path, store: Path) -> None:
    from tests.factories import read_only

    cfg = tiny_config(tmp_path, tiny_data, store=str(store), dry_run=True)
    with read_only(store), pytest.raises(StoreNotWritableError, match="not writable"):
        prepare(cfg)


def test_a_dataset_the_store_holds_with_other_content_is_refused_before_planning(tmp_path: Path, tiny_data: Path):
    from metagen.store import StoreMetadata, create_store, write_run
    from tests.factories import make_curve, make_run
    from tests.sweep.conftest import tiny_config

    cfg = tiny_config(tmp_path, tiny_data, dry_run=True)
    create_store(cfg.store, StoreMetadata(name="store"))
    write_run(cfg.store, make_run("other", dataset="shapes_a", dataset_fingerprint="0" * 16), make_curve())
    with pytest.raises(SweepConfigError, match=r"shapes_a.*other content"):
        prepare(cfg)
