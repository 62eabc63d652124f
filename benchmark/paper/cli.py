"""``python -m benchmark.paper store=STORE out=DIR [cluster=local|slurm] [seeds=[0]] [budget=SECONDS] ...``

Plans every cell of the paper's experiments on the store (all checked before any cell runs), replays those
without a file (rerun the same command to resume), and writes every figure and table with ``DIR/index.md``.
Keys: :class:`benchmark.config.PaperConfig`. Exit status (``metagen.exit_codes``): 0 done, 1 some cells failed
(rerun to retry them), 2 bad input (unknown key, store, version, experiment or method option), 130 interrupted.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from benchmark.config import PaperConfig, SlurmConfig, register_configs
from benchmark.run import guarded, help_or_run, structured
from metagen.exit_codes import PROBLEMS

register_configs()


def help_text() -> str:
    """``--help``: every key with its default and meaning."""
    from benchmark.paper.experiments import EXPERIMENTS, TITLES
    from metagen import cli_help

    return cli_help.render(
        "python -m benchmark.paper store=STORE out=DIR [cluster=local|slurm] 'seeds=[0]' [budget=SECONDS] [KEY=VALUE]",
        "Runs every experiment of the Quick-Tune paper on the versions of a store (resumable; methods that are not "
        "registered are listed as not available) and writes every figure and table into DIR with an index.md.",
        [
            ("Keys (KEY=DEFAULT):", cli_help.keys_section(PaperConfig, skip=("slurm", "defaults", "hydra"))),
            ("cluster=slurm keys (slurm.KEY=DEFAULT):", cli_help.keys_section(SlurmConfig, prefix="slurm.")),
            (
                "Experiments (experiments=[KEY,...]):",
                [line for k in EXPERIMENTS for line in cli_help.entry(k, TITLES[k])],
            ),
        ],
    )


@hydra.main(version_base="1.3", config_path=None, config_name="paper")
def _app(cfg: DictConfig) -> None:
    config = structured(cfg, PaperConfig)
    from benchmark.paper.build import run_paper

    plan, _ = guarded(lambda: run_paper(config), prefix="benchmark.paper")
    if any(s.failed for s in plan.summaries.values()):
        sys.exit(PROBLEMS)


def main() -> None:
    """Entry point: ``--help``, or the Hydra app."""
    help_or_run(help_text, _app)
