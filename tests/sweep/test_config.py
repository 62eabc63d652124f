"""The Hydra configs compose into the schemas, and the example cluster renders the expected sbatch script."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from metagen.sweep.cli import CONF_DIR
from metagen.sweep.config import LocalClusterConfig, SlurmClusterConfig, SweepConfig
from metagen.sweep.executors import job_time_min, max_num_timeout, slurm_parameters

GOLDEN = Path(__file__).parent / "golden" / "example_cluster.sbatch"
REQUIRED = ["store=/data/store", "datasets=[/data/micro]"]


def composed(*overrides: str) -> SweepConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        node = compose(config_name="sweep", overrides=[*REQUIRED, *overrides])
    cfg = OmegaConf.to_object(node)
    assert isinstance(cfg, SweepConfig)
    return cfg


def test_default_is_local_in_process() -> None:
    cfg = composed()
    assert isinstance(cfg.cluster, LocalClusterConfig)
    assert (cfg.cluster.processes, cfg.version, cfg.run_cap_s()) == (1, "micro", 3600.0)
    assert cfg.sweep_path() == Path("/data/store.sweeps/sweep")
    assert cfg.checkpoint_path() == Path("/data/store.sweeps/sweep/checkpoints")


def test_hub_dir_reaches_every_run_as_an_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from metagen.sweep.job import RunSettings, finetune_config

    (tmp_path / "hub").mkdir()
    monkeypatch.chdir(tmp_path)
    settings = RunSettings.from_config(composed("hub_dir=hub"))
    assert settings.hub_dir == str(tmp_path / "hub")
    assert finetune_config(settings, "/data/ds", "dla46x_c", {}, 0).hub_dir == str(tmp_path / "hub")
    assert RunSettings.from_config(composed()).hub_dir is None


def test_slurm_overrides_are_typed() -> None:
    cfg = composed("cluster=slurm", "cluster.gpus_per_node=2", "cluster.partition=gpu", "version=mini",
                   "+cluster.additional_parameters.exclude=node01")  # fmt: skip
    c = cfg.cluster
    assert isinstance(c, SlurmClusterConfig)
    assert (c.gpus_per_node, c.partition, c.additional_parameters) == (2, "gpu", {"exclude": "node01"})
    assert job_time_min(cfg, 1) == 255 and cfg.run_cap_s() == 14400.0
    with pytest.raises(ConfigCompositionException, match="gpus_per_node=two"):
        composed("cluster=slurm", "cluster.gpus_per_node=two")
    with pytest.raises(ConfigCompositionException, match=r"cluster\.gpu=1"):
        composed("cluster=slurm", "cluster.gpu=1")


def test_time_per_run_falls_back_to_the_cap() -> None:
    cfg = composed("cluster=slurm", "cap_s=1800")
    cfg.cluster.time_min_per_run = {}
    assert job_time_min(cfg, 2) == 2 * (30 + 15)
    assert max_num_timeout(cfg, 2) == 2 * (3 + 1) + 1


def test_example_cluster_renders_the_golden_sbatch() -> None:
    from submitit.slurm.slurm import _make_sbatch_string

    cfg = composed("cluster=example_cluster", "name=micro-set0")
    params = slurm_parameters(cfg, cfg.cluster.runs_per_job, cfg.cluster.partition)
    text = _make_sbatch_string(command="python -u -m submitit.core._submit /sweep/jobs/%j",
                               folder="/sweep/jobs/%j", map_count=10, **params)  # fmt: skip
    if os.environ.get("METAGEN_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    expected = GOLDEN.read_text()
    diff = "\n".join(difflib.unified_diff(expected.splitlines(), text.splitlines(), "golden", "now", lineterm=""))
    assert text == expected, f"sbatch script changed (METAGEN_UPDATE_GOLDEN=1 accepts it):\n{diff}"
