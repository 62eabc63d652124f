"""Command line of the store: ``python -m metagen.store COMMAND ...`` (see ``--help``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from metagen.exit_codes import BAD_INPUT, PROBLEMS
from metagen.store.errors import CorruptFileError, RunConflictError, StoreError, ValidationError


def _info(args: argparse.Namespace) -> int:
    from metagen.store.inspect import store_info

    info = store_info(args.store)
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return 0
    kind = "SYNTHETIC (not measured)" if info["synthetic"] else "measured"
    print(f"{info['name']}  [{kind}, schema v{info['schema_version']}]")
    print(f"  {info['n_datasets']} datasets, {info['n_runs']} runs, {info['n_epochs']} epochs, "
          f"{info['compute_hours']:.1f} compute hours")  # fmt: skip
    for v, d in info["versions"].items():
        status = ", ".join(f"{k} {n}" for k, n in d["status"].items())
        print(f"  {v:<10} {d['n_datasets']:>4} datasets {d['n_runs']:>7} runs {d['n_epochs']:>9} epochs  ({status})")
    f = info["files"]
    print(f"  files: {f['compacted_parts']} compacted parts, {f['loose']} loose runs, {f['temp']} temp; "
          f"{f['bytes'] / 2**20:.1f} MiB")  # fmt: skip
    return 0


def _validate(args: argparse.Namespace) -> int:
    from metagen.store.inspect import validate_store

    problems = validate_store(args.store)
    for p in problems:
        print(p)
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    print(f"{args.store}: {errors} error(s), {warnings} warning(s)")
    return 1 if errors else 0


def _compact(args: argparse.Namespace) -> int:
    from metagen.store.writer import compact

    report = compact(args.store, stale_temp_after_s=args.stale_temp_after)
    print(f"compacted {report.runs_compacted} runs in {report.partitions} partitions; removed "
          f"{report.loose_files_removed} loose files, {report.parts_replaced} old parts, "
          f"{report.temp_files_removed} temp files")  # fmt: skip
    for p in report.problems:
        print(p)
    return 1 if report.problems else 0


def _drop(args: argparse.Namespace) -> int:
    from metagen.store.drop import drop_runs

    report = drop_runs(args.store, args.backup, args.pretrained_source, dry_run=args.dry_run)
    verb = "would move" if args.dry_run else "moved"
    for (version, dataset), n in sorted(report.moved.items()):
        print(f"{version}/{dataset}: {verb} {n} runs")
    print(f"{verb} {report.total} runs to {args.backup}; {report.kept} runs stay in {args.store}")
    return 0


def _import_quicktune(args: argparse.Namespace) -> int:
    from metagen.store.importers.quicktune import import_quicktune

    print(import_quicktune(args.src, args.dest, name=args.name))
    return 0


def _import_qtt(args: argparse.Namespace) -> int:
    from metagen.store.importers.qtt import import_qtt

    print(import_qtt(args.src, args.dest, name=args.name, train_fraction=args.train_fraction))
    return 0


def _create(args: argparse.Namespace) -> int:
    from metagen.store.layout import StoreMetadata, create_store

    meta = create_store(args.store, StoreMetadata(name=args.name or args.store.name, description=args.description))
    print(f"store '{meta.name}' (schema v{meta.schema_version}) at {args.store}")
    return 0


def _describe(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from metagen.store.layout import check_store_writable, read_metadata, update_metadata

    meta = read_metadata(args.store)
    check_store_writable(args.store)
    update_metadata(args.store, replace(meta, description=args.description))
    print(f"store '{meta.name}' at {args.store}: description replaced ({len(args.description)} characters)")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from metagen.store.synth import synthesize

    meta = synthesize(args.dest, args.profile, seed=args.seed)
    print(f"wrote synthetic store '{meta.name}' to {args.dest} (for scale and performance work only)")
    return 0


def _upgrade(args: argparse.Namespace) -> int:
    from metagen.store.upgrade import upgrade_store

    report = upgrade_store(args.store)
    if report.files_rewritten == 0 and report.from_version == report.to_version:
        print(f"{args.store}: already schema version {report.to_version}; nothing to do")
    else:
        print(f"{args.store}: schema version {report.from_version} -> {report.to_version}, "
              f"{report.files_rewritten} files rewritten")  # fmt: skip
    return 0


def _card(args: argparse.Namespace) -> int:
    from metagen.store.card import write_card

    print(f"data card: {write_card(args.store, args.out, args.datasets)}")
    return 0


def _quality(args: argparse.Namespace) -> int:
    from metagen.store.card import load_runs
    from metagen.store.quality import format_text, store_quality
    from metagen.store.reader import StoreReader

    reader = StoreReader(args.store, check=False)
    runs = load_runs(reader)
    if runs.height == 0:
        raise StoreError(f"{args.store} holds no runs; there is no quality to report")
    report = store_quality(runs, args.datasets)
    if args.json:
        print(json.dumps({"store": reader.metadata.name, **report.to_dict()}, indent=2))
    else:
        print(format_text(report, reader.metadata.name), end="")
    return 1 if args.check and report.failed else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m metagen.store``."""
    parser = argparse.ArgumentParser(prog="python -m metagen.store", description="Learning-curve store tools.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="sizes, statuses and files of a store")
    p.add_argument("store", type=Path)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_info)

    p = sub.add_parser("create", help="create an empty store for measured runs (no-op if it exists)")
    p.add_argument("store", type=Path)
    p.add_argument("--name", help="store name (default: the directory's name)")
    p.add_argument("--description", default="", help="what the store holds")
    p.set_defaults(func=_create)

    p = sub.add_parser("describe", help="replace a store's description (store.json), e.g. when its runs change")
    p.add_argument("store", type=Path)
    p.add_argument("--description", required=True, help="what the store holds")
    p.set_defaults(func=_describe)

    p = sub.add_parser("validate", help="report every problem of a store (exit 1 on errors)")
    p.add_argument("store", type=Path)
    p.set_defaults(func=_validate)

    p = sub.add_parser("compact", help="merge loose run files into partitioned parts; clean leftovers")
    p.add_argument("store", type=Path)
    p.add_argument("--stale-temp-after", type=float, default=600.0, metavar="S",
                   help="remove temp files of other hosts older than S seconds (default 600)")  # fmt: skip
    p.set_defaults(func=_compact)

    p = sub.add_parser("drop", help="move runs (by pretrained_source prefix) into a backup store, to measure again")
    p.add_argument("store", type=Path)
    p.add_argument("--pretrained-source", action="append", required=True, metavar="PREFIX",
                   help="move runs whose pretrained_source starts with PREFIX; repeatable")  # fmt: skip
    p.add_argument("--backup", type=Path, required=True, help="store that receives the moved runs (created if missing)")
    p.add_argument("--dry-run", action="store_true", help="only print what would move")
    p.set_defaults(func=_drop)

    for name, func, what in (
        ("import-quicktune", _import_quicktune, "the original Quick-Tune meta-dataset (aggregated JSON or raw)"),
        ("import-qtt", _import_qtt, "a QuickTuneTool csv meta-dataset"),
    ):
        p = sub.add_parser(name, help=f"import {what}")
        p.add_argument("src", type=Path)
        p.add_argument("dest", type=Path)
        p.add_argument("--name", help="store name (default: the source directory's name)")
        if name == "import-qtt":
            p.add_argument("--train-fraction", type=float, metavar="F",
                           help="share of QTT's num-samples (train + validation images) used for training: "
                                "train_size = round(F * num-samples), e.g. 0.75 for a 60/20/20 split "
                                "(default: train_size stays empty)")  # fmt: skip
        p.set_defaults(func=func)

    p = sub.add_parser("synth", help="write a SYNTHETIC store (scale and performance work only)")
    p.add_argument("dest", type=Path)
    p.add_argument("--profile", choices=["paper", "tiny"], default="tiny")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_synth)

    p = sub.add_parser("upgrade", help="rewrite a store of an older schema version in the current one")
    p.add_argument("store", type=Path)
    p.set_defaults(func=_upgrade)

    datasets_help = "folder holding the store's dataset folders (Meta-Album layout), for the pixel baseline; repeatable"
    p = sub.add_parser("card", help="write data_cards/<name>.md and figures for a store")
    p.add_argument("store", type=Path)
    p.add_argument("--out", type=Path, default=Path("data_cards"))
    p.add_argument("--datasets", type=Path, nargs="+", metavar="DIR", help=datasets_help)
    p.set_defaults(func=_card)

    p = sub.add_parser("quality", help="per-dataset quality (chance, pixel baseline, best/median...) and its checks")
    p.add_argument("store", type=Path)
    p.add_argument("--datasets", type=Path, nargs="+", metavar="DIR", help=datasets_help)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--check", action="store_true", help="exit 1 when a check fails (0 otherwise, 2 on bad input)")
    p.set_defaults(func=_quality)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (``metagen.exit_codes``: 0 ok, 1 problems found in the data,
    2 bad input or usage: no store, an unwritable store, bad arguments)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (CorruptFileError, ValidationError, RunConflictError) as e:
        print(f"error: {e}", file=sys.stderr)
        return PROBLEMS
    except (StoreError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return BAD_INPUT
    except OSError as e:  # missing paths, permissions, read-only file systems met while working
        what = f"{e.strerror}: {e.filename}" if e.filename else str(e)
        print(f"error: {what}; check the path and its permissions", file=sys.stderr)
        return BAD_INPUT
