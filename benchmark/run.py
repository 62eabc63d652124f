"""``python -m benchmark.run store=STORE out=RESULTS [version=...] [methods=[...]] [seeds=[...]] ...``

Replays methods x datasets x seeds of one store version into RESULTS (see :mod:`benchmark.runner`,
config fields in :class:`benchmark.config.RunConfig`). Exit status (``metagen.exit_codes``): 0 all
cells done, 1 some cells failed (rerun to retry them), 2 bad configuration (unknown key, method or
version, missing store), 130 interrupted. ``--help`` lists every key and the registered methods.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import hydra
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchmark.config import RunConfig, SlurmConfig, register_configs
from metagen.exit_codes import BAD_INPUT, INTERRUPTED, PROBLEMS, app_started, fail, missing_keys_message, run_hydra

register_configs()
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf" / "benchmark")  # its own dir: `version=` is a plain key


def help_text() -> str:
    """``--help``: every key with its default and meaning, and the methods one can choose."""
    from benchmark.registry import METHODS
    from metagen import cli_help

    methods = []
    for name, spec in METHODS.items():
        what = [f"{k}={v}" for k, v in spec.options.items()]
        if spec.needs_context:
            what.append("meta-learns on the other datasets' curves")
        if spec.requires:
            what.append(f"needs the optional package(s) {', '.join(spec.requires)}: {spec.install}")
        methods += cli_help.entry(name, ", ".join(what) or "-")
    return cli_help.render(
        "python -m benchmark.run store=STORE out=RESULTS [version=V] 'methods=[NAME,...]' 'seeds=[0,1]' [KEY=VALUE]",
        "Replays methods x datasets x seeds on the learning curves of one version of a store, under a simulated "
        "clock, and writes one Parquet file per cell into RESULTS (cells already there are skipped). The version "
        "must be one the store has (python -m metagen.store info STORE lists them; the bundled stores/offline10-64px "
        "has offline64). Then: python -m benchmark.figures results=RESULTS out=FIGS.",
        [
            ("Keys (KEY=DEFAULT):", cli_help.keys_section(RunConfig, skip=("slurm",))),
            ("executor=slurm keys (slurm.KEY=DEFAULT):", cli_help.keys_section(SlurmConfig, prefix="slurm.")),
            (
                "Methods (methods=[NAME,...]; registered options, overridable with +method_options.NAME.OPTION=VALUE; "
                "a labelled variant: +variants.LABEL.method=NAME +variants.LABEL.options.OPTION=VALUE, then "
                "methods=[...,LABEL]):",
                methods,
            ),
        ],
    )


T = TypeVar("T")


def structured(cfg: DictConfig, cls: type[T]) -> T:
    """The composed config as its dataclass ``cls`` (which has ``store`` and ``out``); exits 2 with a one-line
    message when one of them is missing or a value has the wrong type."""
    app_started()
    missing = missing_keys_message(cfg, ("store", "out"))
    if missing:
        fail(missing)
    try:
        config = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        fail(f"error: {type(e).__name__}: {str(e).splitlines()[0]}")
    assert isinstance(config, cls)
    return config


def guarded(work: Callable[[], T], prefix: str = "error") -> T:
    """``work()``; bad input it finds (store, version, method, option, RESULTS of another run) exits 2 with
    ``prefix: message``, an interrupt exits 130 saying how to resume."""
    from benchmark.registry import UnknownMethodError
    from benchmark.results import ResultsError
    from benchmark.task import TaskError
    from metagen.store import StoreError

    try:
        return work()
    except (TaskError, UnknownMethodError, ResultsError, StoreError, ImportError, ValueError, FileNotFoundError) as e:
        fail(f"{prefix}: {e}", BAD_INPUT)
    except KeyboardInterrupt:
        fail("interrupted; rerun the same command to resume (finished cells are kept)", INTERRUPTED)
    raise AssertionError("unreachable: fail() exits")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="run")
def _app(cfg: DictConfig) -> None:
    config = structured(cfg, RunConfig)
    from benchmark.runner import run_benchmark

    summary = guarded(lambda: run_benchmark(config))
    print(summary)
    if summary.failed:
        sys.exit(PROBLEMS)


def help_or_run(help_text: Callable[[], str], app: Callable[[], object]) -> None:
    """``--help`` prints ``help_text()``; anything else runs the Hydra ``app`` (Hydra's own errors exit 2)."""
    from metagen import cli_help

    if cli_help.wants_help(sys.argv[1:]):
        print(help_text())
        return
    run_hydra(app)


def main() -> None:
    """Entry point: ``--help``, or the Hydra app."""
    help_or_run(help_text, _app)


if __name__ == "__main__":
    main()
