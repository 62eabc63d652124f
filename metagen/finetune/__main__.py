"""Command line: ``python -m metagen.finetune dataset=PATH model=NAME store=STORE epochs=N [hp.KEY=VALUE ...]``.

A thin Hydra entry point around :func:`metagen.finetune.finetune`. ``hp.KEY=VALUE`` adds a
hyperparameter (no ``+`` needed); the rest are ``FinetuneConfig`` fields, ``version=micro|mini|extended``
selects the per-run cap. Prints one line per epoch and the final validation accuracy. Exit status
(``metagen.exit_codes``): 0 when the run is stored (whatever its status), 2 on bad input (unknown key,
bad value, missing or unwritable store, missing dataset), 130 when interrupted. ``--help`` lists every
key, hyperparameter, model, version and dataset kind; torch is imported only once the config is valid.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from metagen.exit_codes import BAD_INPUT, INTERRUPTED, app_started, fail, missing_keys_message, run_hydra
from metagen.search_space import CONF_DIR

CONF_ROOT = str(CONF_DIR.parent)
_HP = re.compile(r"^hp\.[A-Za-z_][A-Za-z0-9_]*=")


def _plus_hp(argv: list[str]) -> list[str]:
    """``hp.KEY=V`` -> ``+hp.KEY=V`` (the ``hp`` dict starts empty; Hydra needs ``+`` to add keys)."""
    return [f"+{a}" if _HP.match(a) else a for a in argv]


def help_text() -> str:
    """``--help``: the keys, hyperparameters, models, versions and dataset kinds a user can choose."""
    from metagen import cli_help
    from metagen.finetune.config import FinetuneConfig
    from metagen.finetune.pipeline import EXTRA_MODELS

    return cli_help.render(
        "python -m metagen.finetune dataset=PATH store=STORE [model=NAME] [epochs=N] [hp.NAME=VALUE ...] [KEY=VALUE]",
        "Finetunes one pipeline (timm model + hyperparameters) on one Meta-Album-layout dataset, epoch by epoch "
        "with a checkpoint after each, and writes the run with its learning curve into the store (create it with "
        "python -m metagen.store create STORE). Hyperparameters not given are sampled from the search space "
        "with seed.",
        [
            ("Keys (KEY=DEFAULT):", cli_help.keys_section(FinetuneConfig, skip=("hp",))),
            (
                f"Hyperparameters (hp.NAME=VALUE) of search space v1 (search_space= one of {cli_help.search_spaces()};"
                " cpu8 differs in batch_size and amp, see conf/search_spaces/):",
                cli_help.hyperparameters_section("v1"),
            ),
            ("Models (model=NAME: alias or timm name) of search space v1:", cli_help.models_section("v1")),
            (f"  and with offline ImageNet weights: {', '.join(EXTRA_MODELS)}", []),
            ("Versions (version=NAME sets these keys; each can be overridden):", cli_help.versions_section()),
            (
                "Dataset kinds (a dataset folder to train on: python -m metagen.datasets make KIND OUT):",
                cli_help.dataset_kinds_section(),
            ),
        ],
    )


def _epoch_line(epochs: int) -> Any:
    def show(row: dict[str, Any]) -> None:
        t = row["train_time"] + row["eval_time"]
        print(f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.4f}  "
              f"val top-1 {row['eval_top1']:.4f}  {t:.1f} s", flush=True)  # fmt: skip

    return show


def main() -> None:
    """Parse the overrides with Hydra and run ``finetune``."""
    from metagen import cli_help

    if cli_help.wants_help(sys.argv[1:]):
        print(help_text())
        return
    import hydra
    from omegaconf import DictConfig, OmegaConf

    from metagen.finetune.config import FinetuneConfig, register_configs

    register_configs()

    @hydra.main(version_base=None, config_path=CONF_ROOT, config_name="finetune")
    def _run(cfg: DictConfig) -> None:
        app_started()
        missing = missing_keys_message(cfg, ("dataset", "store"))
        if missing:
            fail(missing)
        config = OmegaConf.to_object(cfg)
        assert isinstance(config, FinetuneConfig)
        from metagen.finetune import Interrupted, finetune  # torch and timm: only for a valid config

        try:
            result = finetune(config, on_epoch=_epoch_line(config.epochs))
        except (ValueError, FileNotFoundError) as e:
            fail(f"error: {e}", BAD_INPUT)
        except (Interrupted, KeyboardInterrupt) as e:
            fail(str(e) or "interrupted; rerun to resume from the last epoch's checkpoint", INTERRUPTED)
        action = "wrote" if result.wrote_store else "already stored"
        print(f"{result.run_id}: {result.status}, {result.n_epochs} epoch(s), {action} ({result.elapsed_s:.1f} s)")
        if result.final_top1 is not None:
            print(f"final val top-1: {result.final_top1:.4f} (epoch {result.n_epochs})")
        if result.message:
            print(result.message.splitlines()[0])

    sys.argv = [sys.argv[0], *_plus_hp(sys.argv[1:])]
    run_hydra(_run)


if __name__ == "__main__":
    main()
