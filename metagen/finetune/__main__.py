"""Command line: ``python -m metagen.finetune dataset=PATH model=NAME store=STORE epochs=N [hp.KEY=VALUE ...]``.

A thin Hydra entry point around :func:`metagen.finetune.finetune`. ``hp.KEY=VALUE`` adds a
hyperparameter (no ``+`` needed); the rest are ``FinetuneConfig`` fields, ``version=micro|mini|extended``
selects the per-run cap. Exit status: 0 when the run is stored (whatever its status), 2 on a
configuration error, 3 when interrupted.
"""

from __future__ import annotations

import re
import sys

from metagen.search_space import CONF_DIR

CONF_ROOT = str(CONF_DIR.parent)
_HP = re.compile(r"^hp\.[A-Za-z_][A-Za-z0-9_]*=")


def _plus_hp(argv: list[str]) -> list[str]:
    """``hp.KEY=V`` -> ``+hp.KEY=V`` (the ``hp`` dict starts empty; Hydra needs ``+`` to add keys)."""
    return [f"+{a}" if _HP.match(a) else a for a in argv]


def main() -> None:
    """Parse the overrides with Hydra and run ``finetune``."""
    import hydra
    from omegaconf import DictConfig, OmegaConf

    from metagen.finetune import FinetuneConfig, Interrupted, finetune
    from metagen.finetune.config import register_configs

    register_configs()

    @hydra.main(version_base=None, config_path=CONF_ROOT, config_name="finetune")
    def _run(cfg: DictConfig) -> None:
        missing = [k for k in ("dataset", "store") if OmegaConf.is_missing(cfg, k)]
        if missing:
            print(f"error: {', '.join(f'{k}=...' for k in missing)} required", file=sys.stderr)
            sys.exit(2)
        config = OmegaConf.to_object(cfg)
        assert isinstance(config, FinetuneConfig)
        try:
            result = finetune(config)
        except (ValueError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except Interrupted as e:
            print(str(e), file=sys.stderr)
            sys.exit(3)
        action = "wrote" if result.wrote_store else "already stored"
        print(f"{result.run_id}: {result.status}, {result.n_epochs} epoch(s), {action} ({result.elapsed_s:.1f} s)")
        if result.message:
            print(result.message.splitlines()[0])

    sys.argv = [sys.argv[0], *_plus_hp(sys.argv[1:])]
    _run()


if __name__ == "__main__":
    main()
