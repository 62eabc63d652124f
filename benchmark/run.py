"""``python -m benchmark.run store=STORE out=RESULTS [version=...] [methods=[...]] [seeds=[...]] ...``

Replays methods x datasets x seeds of one store version into RESULTS (see :mod:`benchmark.runner`,
config fields in :class:`benchmark.config.RunConfig`). Exit status: 0 all cells done, 1 some cells
failed (rerun to retry them), 2 bad configuration.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from benchmark.config import RunConfig, register_configs
from benchmark.registry import UnknownMethodError
from benchmark.results import ResultsError
from benchmark.runner import run_benchmark
from benchmark.task import TaskError
from metagen.store import StoreError

register_configs()
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf" / "benchmark")  # its own dir: `version=` is a plain key


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="run")
def main(cfg: DictConfig) -> None:
    """Entry point (Hydra)."""
    config = OmegaConf.to_object(cfg)
    assert isinstance(config, RunConfig)
    try:
        summary = run_benchmark(config)
    except (TaskError, UnknownMethodError, ResultsError, StoreError, ImportError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(summary)
    if summary.failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
