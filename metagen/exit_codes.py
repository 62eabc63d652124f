"""Exit codes shared by every command line of the project (documented in README.md, "Exit codes").

* ``OK`` (0): done.
* ``PROBLEMS`` (1): the command ran and found problems or had failures: ``validate`` errors, a damaged
  file that stopped ``compact``, runs of a sweep that failed, benchmark cells that failed.
* ``BAD_INPUT`` (2): nothing was done because of the input: an unknown flag or key, a wrong type, a
  missing or invalid store / dataset / results folder, an unwritable store, an impossible config.
* ``INTERRUPTED`` (130): stopped by Ctrl-C (or a stop request); rerun to resume.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

OK = 0
PROBLEMS = 1
BAD_INPUT = 2
INTERRUPTED = 130

_started = {"app": False}


def app_started() -> None:
    """Called first thing by a Hydra task function: Hydra composed the config, the app itself runs now."""
    _started["app"] = True


def run_hydra(app: Callable[[], object]) -> None:
    """Run a ``@hydra.main`` app; Hydra's own errors (unknown key, wrong type, bad override syntax, found
    before the task function calls :func:`app_started`) exit with ``BAD_INPUT`` instead of Hydra's 1.

    ``-h`` / ``--help`` / ``--hydra-help`` and the app's own exit codes pass through unchanged.
    """
    _started["app"] = False
    try:
        app()
    except SystemExit as e:
        if e.code == 1 and not _started["app"]:
            raise SystemExit(BAD_INPUT) from None
        raise


def missing_keys_message(node: object, keys: tuple[str, ...]) -> str | None:
    """``error: store=..., out=... required`` for the mandatory keys (``???``) of a composed config, or None."""
    from omegaconf import OmegaConf

    missing = [k for k in keys if OmegaConf.is_missing(node, k)]
    return f"error: {', '.join(f'{k}=...' for k in missing)} required" if missing else None


def fail(message: str, code: int = BAD_INPUT) -> None:
    """Print ``message`` on stderr and exit with ``code``."""
    print(message, file=sys.stderr)
    sys.exit(code)
