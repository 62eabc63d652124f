"""Command line of the local hub.

``python -m metagen.hub pretrain --model NAME --out hub/ [--epochs N --images N --seed S ...]``
pretrains ``NAME`` (a timm architecture) from random initialisation on the source corpus and writes
``hub/<NAME>.<corpus><resolution>/`` (``model.safetensors``, ``card.json``, ``card.md``); rerun the
same command after an interruption to resume from the last finished epoch.

``python -m metagen.hub list hub/`` prints one line per card.

Exit status: 0 on success, 2 on bad input (missing corpus, bad settings, malformed card).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metagen.hub.card import HubCardError, list_cards
from metagen.hub.corpora import CORPORA
from metagen.hub.pretrain import PretrainSettings, check_settings, pretrain


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m metagen.hub", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pt = sub.add_parser("pretrain", help="pretrain a timm architecture and write its weights and card")
    pt.add_argument("--model", required=True, help="timm architecture, e.g. edgenext_xx_small")
    pt.add_argument("--out", required=True, type=Path, help="hub folder (created if missing)")
    pt.add_argument("--corpus", default="fmnist", choices=sorted(CORPORA), help="source corpus (default fmnist)")
    pt.add_argument("--resolution", type=int, default=64, help="input side length in px (default 64)")
    pt.add_argument("--epochs", type=int, default=3)
    pt.add_argument("--images", type=int, default=None, help="training images per epoch (default: whole split)")
    pt.add_argument("--batch-size", type=int, default=64)
    pt.add_argument("--lr", type=float, default=2e-3)
    pt.add_argument("--weight-decay", type=float, default=0.05)
    pt.add_argument("--warmup-steps", type=int, default=200)
    pt.add_argument("--no-hflip", action="store_true", help="no horizontal flips (required for glyph corpora)")
    pt.add_argument("--seed", type=int, default=0)
    pt.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    pt.add_argument("--progress-steps", type=int, default=100, help="log progress every N steps (0: per epoch only)")
    ls = sub.add_parser("list", help="list the cards of a hub folder")
    ls.add_argument("hub", type=Path)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            for card in list_cards(args.hub):
                print(
                    f"{card.card_id}\t{card.provenance}\t{card.source['name']} {card.source['split']}\t"
                    f"{card.evaluation['split']} top-1 {card.evaluation['top1']:.4f}\t"
                    f"epochs {card.epochs}\t{card.cost['cpu_s']:.0f} CPU-s"
                )
            return 0
        settings = PretrainSettings(
            architecture=args.model,
            corpus=args.corpus,
            resolution=args.resolution,
            epochs=args.epochs,
            images=args.images,
            batch_size=args.batch_size,
            lr=args.lr,
            weight_decay=args.weight_decay,
            warmup_steps=args.warmup_steps,
            hflip=not args.no_hflip,
            seed=args.seed,
        )
        check_settings(settings)  # before the corpus is read
        if (args.out / settings.card_id).exists():
            raise HubCardError(f"{args.out / settings.card_id} exists already; delete it to pretrain again")
        corpus = CORPORA[args.corpus](args.resolution)
        made = pretrain(
            settings,
            args.out,
            corpus,
            threads=args.threads,
            log=lambda s: print(s, flush=True),
            progress_steps=args.progress_steps,
        )
    except (HubCardError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    assert made is not None
    print(f"wrote {args.out / made.card_id}: {made.provenance}, top-1 {made.evaluation['top1']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
