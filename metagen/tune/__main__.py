"""``python -m metagen.tune dataset=PATH store=STORE meta_store=STORE budget=2h [method=quicktune] [workers=N]
[cluster=local|slurm] [key=value ...]``: tune a new dataset with live finetuning (see metagen.tune)."""

from __future__ import annotations

import sys

from metagen.exit_codes import BAD_INPUT, INTERRUPTED, OK
from metagen.tune.config import TuneConfigError, parse_args
from metagen.tune.session import run_session


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; exit 2 on a refused setting, 130 on Ctrl-C (relaunch to resume)."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return OK
    try:
        run_session(parse_args(args), log=lambda s: print(s, flush=True))
    except TuneConfigError as e:
        print(f"metagen.tune: {e}", file=sys.stderr)
        return BAD_INPUT
    except KeyboardInterrupt:
        print("metagen.tune: interrupted; relaunch the same command to resume", file=sys.stderr)
        return INTERRUPTED
    return OK


if __name__ == "__main__":
    sys.exit(main())
