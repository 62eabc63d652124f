"""Command line: ``python -m metagen.datasets {list,make,info,suite} ...`` (see ``--help``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from metagen.datasets.errors import DatasetError
from metagen.exit_codes import BAD_INPUT


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _list(args: argparse.Namespace) -> int:
    from metagen.datasets.kinds import KIND_SPECS

    for spec in KIND_SPECS.values():
        reason = spec.unavailable()
        status = "available" if reason is None else "NOT AVAILABLE"
        per = "unlimited" if spec.max_per_class is None else f"<= {spec.max_per_class}"
        print(f"{spec.name:<14} {status:<13} classes <= {spec.max_classes:<3} per class {per:<10} {spec.description}")
        if reason:
            print(f"{'':<14} -> {reason}")
    return 0


def _make(args: argparse.Namespace) -> int:
    from metagen.datasets.make import make_dataset

    out = make_dataset(args.kind, args.out, n_classes=args.classes, per_class=args.per_class,
                       resolution=args.resolution, seed=args.seed, name=args.name, force=args.force,
                       progress=True)  # fmt: skip
    print(f"wrote {args.classes} x {args.per_class} {args.kind} images ({args.resolution} px) to {out}")
    return 0


def _suite(args: argparse.Namespace) -> int:
    from metagen.datasets.suite import DEFAULT_SUITE, load_spec, make_suite

    spec = DEFAULT_SUITE if args.spec is None else load_spec(args.spec)
    paths = make_suite(args.out, spec, seed=args.seed, force=args.force, skip_unavailable=args.skip_unavailable,
                       progress=True)  # fmt: skip
    print(f"wrote {len(paths)} datasets and suite.json to {args.out}: {', '.join(p.name for p in paths)}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from metagen.datasets.metaalbum import load_dataset

    ds = load_dataset(args.path)
    if args.verify:
        ds.verify(progress=True)
    split = ds.split(args.split_seed)
    counts = ds.class_counts()
    report = {
        "name": ds.name,
        "root": str(ds.root),
        "images": len(ds),
        "classes": len(ds.classes),
        "images_per_class": {"min": int(counts.min()), "max": int(counts.max())},
        "meta_features": ds.meta_features(split),
        "split_seed": args.split_seed,
        "split": split.sizes(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    mf = report["meta_features"]
    print(f"{ds.name}  ({ds.root})")
    print(f"  {len(ds)} images, {len(ds.classes)} classes, {counts.min()}-{counts.max()} images per class")
    print(f"  meta-features: train_size={mf['train_size']} num_classes={mf['num_classes']} "
          f"resolution={mf['resolution']} channels={mf['channels']}")  # fmt: skip
    s = split.sizes()
    print(f"  split (seed {args.split_seed}): train {s['train']}, val {s['val']}, test {s['test']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``python -m metagen.datasets``."""
    from metagen.datasets.kinds import KINDS

    p = argparse.ArgumentParser(prog="python -m metagen.datasets", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="the dataset kinds and whether their source is installed").set_defaults(func=_list)

    m = sub.add_parser("make", help="write a generated dataset in the Meta-Album layout")
    m.add_argument("kind", choices=KINDS, metavar="KIND", help=f"one of {', '.join(KINDS)}")
    m.add_argument("out", type=Path, metavar="OUT", help="new or empty output folder")
    m.add_argument("--classes", type=_positive, default=10, help="number of classes (default 10)")
    m.add_argument("--per-class", type=_positive, default=40, help="images per class (default 40, as Micro)")
    m.add_argument("--resolution", type=_positive, default=64, help="image side in pixels (default 64)")
    m.add_argument("--seed", type=_non_negative, default=0, help="generator seed (default 0)")
    m.add_argument("--name", default=None, help="dataset_name in info.json (default: OUT's folder name)")
    m.add_argument("--force", action="store_true", help="replace OUT if it already holds a dataset")
    m.set_defaults(func=_make)

    s = sub.add_parser("suite", help="write DEFAULT_SUITE (12 datasets), or the suite of --spec, into a folder")
    s.add_argument("out", type=Path, metavar="OUT")
    s.add_argument("--spec", type=Path, help="YAML file: {datasets: [{kind, name, n_classes, per_class, resolution}]}")
    s.add_argument("--seed", type=_non_negative, default=0, help="suite seed (default 0)")
    s.add_argument("--force", action="store_true", help="replace existing dataset folders")
    s.add_argument("--skip-unavailable", action="store_true", help="leave out kinds whose source is missing")
    s.set_defaults(func=_suite)

    i = sub.add_parser("info", help="meta-features and split sizes of a Meta-Album dataset folder")
    i.add_argument("path", type=Path, metavar="PATH")
    i.add_argument("--split-seed", type=_non_negative, default=93, help="split seed (default 93, the paper's)")
    i.add_argument("--verify", action="store_true", help="decode every image")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=_info)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (``metagen.exit_codes``: 2 for bad arguments and for a dataset that
    cannot be read or made: missing folder, not empty, too many classes, kind unavailable)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
