"""Command line: ``python -m metagen.fetch WHAT [WHAT ...] DEST`` (see ``--help``)."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from metagen.exit_codes import BAD_INPUT, INTERRUPTED, PROBLEMS
from metagen.fetch.download import DownloadSettings, FetchError
from metagen.fetch.sources import (
    LFS_BASE,
    OPENML_API,
    QUICKTUNE_BASE,
    QUICKTUNE_VERSIONS,
    Fetched,
    Mirrors,
    fetch_openml_dataset,
    fetch_quicktune,
    meta_album_ids,
    quicktune_import_source,
)

EPILOG = """\
WHAT is one of:
  quicktune                     the Quick-Tune meta-dataset, all of micro, mini, extended
  quicktune/VERSION             one version (micro | mini | extended)
  meta-album/VERSION[/SET]      Meta-Album datasets from OpenML (VERSION micro | mini | extended, SET set0..set2)
  openml/ID                     one OpenML dataset id

Then (printed at the end):
  python -m metagen.store import-quicktune DEST/quicktune STORE      a store of the paper's curves
  python -m benchmark.run store=STORE version=micro out=OUT ...      replays on it
  python -m metagen.finetune dataset=DEST/meta-album/micro/set0/PLT_VIL ...   finetuning on a fetched dataset

A second run downloads nothing; an interrupted download resumes where it stopped.

Exit codes: 0 everything fetched, 1 a fetch failed (the error names the URL and what to do), 2 bad input
(nothing done), 130 interrupted (rerun to resume).
"""

Job = Callable[[], Fetched]


def _jobs(what: str, dest: Path, mirrors: Mirrors, keep: bool, settings: DownloadSettings) -> list[Job]:
    """The fetches ``what`` stands for; ``ValueError`` for an unknown item."""
    parts = what.strip("/").split("/")
    if parts[0] == "quicktune" and len(parts) <= 2:
        versions = QUICKTUNE_VERSIONS if len(parts) == 1 else (parts[1],)
        if not set(versions) <= set(QUICKTUNE_VERSIONS):
            raise ValueError(f"unknown Quick-Tune version {parts[1]!r}; known: {list(QUICKTUNE_VERSIONS)}")
        return [
            lambda v=v: fetch_quicktune(v, dest, mirrors, keep_archive=keep, settings=settings)  # type: ignore[misc]
            for v in versions
        ]
    if parts[0] == "meta-album" and len(parts) in (2, 3):
        ids = meta_album_ids(parts[1], parts[2] if len(parts) == 3 else None)
        return [lambda i=i: fetch_openml_dataset(i, dest, mirrors, settings=settings) for i in ids]  # type: ignore[misc]
    if parts[0] == "openml" and len(parts) == 2 and re.fullmatch(r"\d+", parts[1]):
        return [lambda: fetch_openml_dataset(int(parts[1]), dest, mirrors, settings=settings)]
    raise ValueError(f"unknown item {what!r}; see --help for quicktune[/VERSION], meta-album/VERSION[/SET], openml/ID")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m metagen.fetch",
        description="Download the Quick-Tune meta-dataset archives and Meta-Album datasets (needs internet).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("what", nargs="+", metavar="WHAT", help="what to fetch (see below)")
    p.add_argument("dest", metavar="DEST", help="folder to fetch into (created)")
    p.add_argument("--keep-archives", action="store_true", help="keep the Quick-Tune zips under DEST/.fetch/")
    p.add_argument("--attempts", type=int, default=3, help="tries per file before giving up (default 3)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a try fails")
    p.add_argument("--quicktune-base", default=QUICKTUNE_BASE, help=f"folder URL of VERSION.zip ({QUICKTUNE_BASE})")
    p.add_argument("--lfs-base", default=LFS_BASE, help=f"folder URL of the Git LFS contents ({LFS_BASE})")
    p.add_argument("--openml-api", default=OPENML_API, help=f"OpenML JSON API ({OPENML_API})")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Fetch every WHAT into DEST; exit 0 when all are there, 1 on a failed fetch, 2 on bad input."""
    args = _parser().parse_args(argv)
    dest = Path(args.dest)
    mirrors = Mirrors(quicktune=args.quicktune_base, lfs=args.lfs_base, openml_api=args.openml_api)
    if args.attempts < 1 or args.timeout <= 0:
        print("error: --attempts must be >= 1 and --timeout > 0", file=sys.stderr)
        return BAD_INPUT
    settings = DownloadSettings(attempts=args.attempts, timeout_s=args.timeout)
    try:
        jobs = [job for what in args.what for job in _jobs(what, dest, mirrors, args.keep_archives, settings)]
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return BAD_INPUT
    done: list[Fetched] = []
    failed: list[str] = []
    for job in jobs:
        try:
            done.append(job())
        except FetchError as e:
            print(f"error: {e}", file=sys.stderr)
            failed.append(str(e))
        except KeyboardInterrupt:
            print("interrupted; rerun the same command to resume", file=sys.stderr)
            return INTERRUPTED
    for f in done:
        print(f"{f.item}: {f.path}{'' if f.downloaded else ' (already there)'}")
    qt = sorted({quicktune_import_source(f.path) for f in done if f.item.startswith("quicktune/")})
    for src in qt:
        print(f"next: python -m metagen.store import-quicktune {src} STORE")
    if failed:
        print(f"{len(failed)} of {len(jobs)} fetches failed (see above); rerun to retry them", file=sys.stderr)
        return PROBLEMS
    return 0
