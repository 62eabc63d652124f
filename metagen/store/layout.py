"""Where things live in a store directory, and the store's own metadata file.

::

    STORE/
      store.json                                   # StoreMetadata
      runs/version=<v>/dataset=<d>/<run_id>.parquet   # loose run files, one per run (jobs write these)
      compacted/version=<v>/dataset=<d>/part-<token>-runs.parquet
      compacted/version=<v>/dataset=<d>/part-<token>-curves.parquet

A compacted part is committed by its ``-runs`` file: ``-curves`` is written first, so a
``-curves`` file without its ``-runs`` file is the leftover of a killed ``compact`` and is ignored.
Temp files start with ``.`` and end in ``.tmp``; readers never see them.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from metagen.store.errors import SchemaVersionError, StoreError, StoreNotFoundError, StoreNotWritableError
from metagen.store.schema import SCHEMA_VERSION

STORE_FILE = "store.json"
LOOSE_DIR = "runs"
COMPACTED_DIR = "compacted"
FORMAT = "metagen-learning-curve-store"


@dataclass(frozen=True)
class StoreMetadata:
    """What a store is: its name, schema version, whether it is synthetic, and known deviations."""

    name: str
    schema_version: int = SCHEMA_VERSION
    synthetic: bool = False
    description: str = ""
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    deviations: tuple[str, ...] = ()
    generator: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT

    def to_json(self) -> str:
        """The metadata as the text of ``store.json``."""
        d = asdict(self)
        d["deviations"] = list(self.deviations)
        return json.dumps(d, indent=2, sort_keys=True) + "\n"


DATASET_KEYS = "dataset_keys"
"""``StoreMetadata.generator`` entry of an imported store: ``{version: [full source key, ...]}`` in the source's
order (Quick-Tune: the keys of ``eval_top1.json``, e.g. ``mtlbm/micro/set1/PNU``; the store names a dataset by the
key's last component). The paper's meta-training folds shuffle this list (``surrogates.folds``)."""

SAMPLE_COUNTS = "num_samples"
"""``StoreMetadata.generator`` entry of a QTT import: ``{version: {dataset: QTT's num-samples}}``, the number of
training **plus validation** images (so not the ``train_size`` column)."""


def dataset_of_key(key: str) -> str:
    """The store's dataset name for a source's dataset key: its last path component (``mtlbm/micro/set1/PNU`` ->
    ``PNU``; ``""`` for a key without one)."""
    return key.rstrip("/").rsplit("/", 1)[-1]


def dataset_keys(root: str | Path, version: str) -> tuple[str, ...]:
    """The full source keys of ``version``'s datasets in source order, as an import recorded them (``()``: none)."""
    keys = read_metadata(root).generator.get(DATASET_KEYS, {}).get(version, [])
    return tuple(str(k) for k in keys)


def merge_generator(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` with ``new`` merged in, for a store imported into more than once: mappings merge key by key, lists
    keep their items and append new ones in order, a value ``old`` already has stays."""
    out = dict(old)
    for key, value in new.items():
        if key not in out:
            out[key] = value
        elif isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = merge_generator(out[key], value)
        elif isinstance(out[key], list) and isinstance(value, list):
            out[key] = out[key] + [v for v in value if v not in out[key]]
    return out


def metadata_fields(root: str | Path) -> dict[str, Any]:
    """The fields of ``store.json`` at ``root``, whatever its schema version; clear errors for a non-store."""
    path = Path(root) / STORE_FILE
    if not path.is_file():
        raise StoreNotFoundError(
            f"{root} is not a learning-curve store (no {STORE_FILE}); check the path, or create one with "
            f"`python -m metagen.store create {root}` (or synth|import-quicktune|import-qtt)"
        )
    try:
        d = json.loads(path.read_text())
    except ValueError as e:
        raise StoreError(f"{path} is not valid JSON ({e}); restore it from version control or a backup") from e
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise StoreError(f"{path} is not a {FORMAT} metadata file")
    return d


def metadata_from_fields(d: dict[str, Any]) -> StoreMetadata:
    """A :class:`StoreMetadata` of ``store.json``'s fields (unknown fields ignored)."""
    d = {**d, "deviations": tuple(d.get("deviations", ()))}
    return StoreMetadata(**{k: v for k, v in d.items() if k in StoreMetadata.__dataclass_fields__})


def read_metadata(root: str | Path) -> StoreMetadata:
    """The metadata of the store at ``root``; clear errors for a non-store or another schema version."""
    d = metadata_fields(root)
    if d.get("schema_version") != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{root} was written with schema version {d.get('schema_version')}, this code reads version "
            f"{SCHEMA_VERSION}; upgrade it with `python -m metagen.store upgrade {root}` (older versions), use the "
            "metagen release that wrote it, or re-import its source data"
        )
    return metadata_from_fields(d)


def create_store(root: str | Path, metadata: StoreMetadata, exist_ok: bool = True) -> StoreMetadata:
    """Create the store at ``root`` (safe when many jobs do it at once); returns the stored metadata.

    An existing store is kept as it is when ``exist_ok``; a store of another kind (synthetic vs.
    real) is an error so that synthetic runs never mix with measured ones.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / STORE_FILE
    if not path.exists():
        publish_bytes(path, metadata.to_json().encode())
    existing = read_metadata(root)
    if existing.synthetic != metadata.synthetic:
        kind = "synthetic" if existing.synthetic else "measured"
        raise StoreError(
            f"{root} is a {kind} store; write {'real' if existing.synthetic else 'synthetic'} runs into another store"
        )
    if not exist_ok and existing != metadata:
        raise StoreError(f"{root} already exists; choose a new path or pass exist_ok")
    return existing


def update_metadata(root: str | Path, metadata: StoreMetadata) -> None:
    """Replace ``store.json`` atomically."""
    path = Path(root) / STORE_FILE
    tmp = temp_path(path)
    tmp.write_text(metadata.to_json())
    os.replace(tmp, path)


def check_writable(path: str | Path, what: str = "store") -> None:
    """A file can be created in the folder ``path``, or in its first existing ancestor if it does not exist yet.

    Writes and removes a hidden temp file there (a real write: catches read-only mounts, permissions, ACLs
    and immutable folders alike, also for root).

    Raises:
        StoreNotWritableError: naming ``what``, the folder that blocks it and what to do.
    """
    path = Path(path).expanduser().absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise StoreNotWritableError(f"{what} {path}: {existing} is a file, not a folder; choose another path")
    probe = temp_path(existing / "write-probe")
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise StoreNotWritableError(
            f"{what} {path} is not writable: cannot create a file in {existing} ({e.strerror}); nothing was "
            "done: choose a folder you can write to, or make it writable (e.g. chmod -R u+w, or remount read-write)"
        ) from e


def check_store_writable(root: str | Path, version: str | None = None, dataset: str | None = None) -> None:
    """Runs of ``version`` / ``dataset`` can be written into the store (existing or not): checked in the deepest
    existing folder of their partition, before any compute is spent on them.

    Raises:
        StoreNotWritableError: the store cannot take them.
    """
    target = Path(root)
    if version is not None:
        target = target / LOOSE_DIR / f"version={encode_component(version)}"
        if dataset is not None:
            target = target / f"dataset={encode_component(dataset)}"
    check_writable(root, "store")
    if target != Path(root):
        check_writable(target, "store")


def encode_component(name: str) -> str:
    """A dataset or version name made safe as a path component (reversible)."""
    return quote(name, safe="-_.+")


def decode_component(text: str) -> str:
    """Inverse of :func:`encode_component`."""
    return unquote(text)


def partition_dir(root: str | Path, kind: str, version: str, dataset: str) -> Path:
    """``root/<kind>/version=<v>/dataset=<d>`` with ``kind`` = ``runs`` or ``compacted``."""
    return Path(root) / kind / f"version={encode_component(version)}" / f"dataset={encode_component(dataset)}"


def parse_partition(directory: Path) -> tuple[str, str]:
    """(version, dataset) of a partition directory."""
    v, d = directory.parent.name, directory.name
    if not (v.startswith("version=") and d.startswith("dataset=")):
        raise StoreError(f"{directory} is not a partition directory (version=<v>/dataset=<d>)")
    return decode_component(v[len("version=") :]), decode_component(d[len("dataset=") :])


def loose_path(root: str | Path, version: str, dataset: str, run_id: str) -> Path:
    """Where the loose file of a run lives."""
    return partition_dir(root, LOOSE_DIR, version, dataset) / f"{run_id}.parquet"


def temp_path(final: Path) -> Path:
    """A unique temp name beside ``final``: hidden, tagged with host and pid, ending in ``.tmp``."""
    tag = f"{host_tag()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    return final.with_name(f".{final.name}.{tag}.tmp")


def host_tag() -> str:
    """This host's name as it appears in temp-file names (dots replaced)."""
    return socket.gethostname().replace(".", "_")


def temp_owner(path: Path) -> tuple[str, int] | None:
    """(host tag, pid) of the writer that made a temp file, if its name says so."""
    parts = path.name.split(".")
    try:
        return parts[-4], int(parts[-3])
    except (IndexError, ValueError):
        return None


def publish_bytes(final: Path, data: bytes) -> bool:
    """Write ``data`` to ``final`` atomically and never over an existing file; False if it existed."""
    tmp = temp_path(final)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return publish(tmp, final)


def publish(tmp: Path, final: Path) -> bool:
    """Move a finished temp file to ``final`` atomically, never replacing a file already there.

    Uses a hard link (atomic create-if-absent on POSIX file systems, NFS and Lustre included) and
    falls back to rename where links are not supported. Returns False if ``final`` existed.
    """
    try:
        os.link(tmp, final)
    except FileExistsError:
        tmp.unlink(missing_ok=True)
        return False
    except OSError:
        if final.exists():
            tmp.unlink(missing_ok=True)
            return False
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        return True
    tmp.unlink(missing_ok=True)
    _fsync_dir(final.parent)
    return True


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _partition_files(base: Path, version: str | None, suffix: str) -> list[Path]:
    """Files ending in ``suffix`` (not hidden) in ``base/version=*/dataset=*/``, sorted."""
    out: list[Path] = []
    wanted = None if version is None else f"version={encode_component(version)}"
    for vdir in _subdirs(base, "version="):
        if wanted is not None and vdir.name != wanted:
            continue
        for ddir in _subdirs(vdir, "dataset="):
            with os.scandir(ddir) as it:
                out.extend(Path(e.path) for e in it if e.name.endswith(suffix) and not e.name.startswith("."))
    return sorted(out)


def _subdirs(base: Path, prefix: str) -> list[Path]:
    try:
        with os.scandir(base) as it:
            return [Path(e.path) for e in it if e.name.startswith(prefix) and e.is_dir()]
    except FileNotFoundError:
        return []


def loose_files(root: str | Path, version: str | None = None) -> list[Path]:
    """Every loose run file, sorted."""
    return _partition_files(Path(root) / LOOSE_DIR, version, ".parquet")


def compacted_parts(
    root: str | Path, version: str | None = None, dataset: str | None = None
) -> list[tuple[Path, Path]]:
    """Committed compacted parts as (runs file, curves file), sorted; of one partition if ``dataset`` is given."""
    if dataset is not None and version is not None:
        directory = partition_dir(root, COMPACTED_DIR, version, dataset)
        files = sorted(directory.glob("part-*-runs.parquet")) if directory.is_dir() else []
    else:
        files = _partition_files(Path(root) / COMPACTED_DIR, version, "-runs.parquet")
    out = []
    for runs in files:
        curves = runs.with_name(runs.name[: -len("-runs.parquet")] + "-curves.parquet")
        out.append((runs, curves))
    return out


def orphan_curve_parts(root: str | Path) -> list[Path]:
    """``-curves`` part files whose ``-runs`` file is absent (left by a killed compact)."""
    base = Path(root) / COMPACTED_DIR
    out = []
    for curves in sorted(base.glob("version=*/dataset=*/part-*-curves.parquet")):
        runs = curves.with_name(curves.name[: -len("-curves.parquet")] + "-runs.parquet")
        if not runs.exists():
            out.append(curves)
    return out


def temp_files(root: str | Path) -> list[Path]:
    """Temp files left anywhere in the store (by writers that were killed or are still writing)."""
    root = Path(root)
    return sorted(p for p in root.rglob(".*.tmp") if p.is_file())


def new_part_token() -> str:
    """A token that orders parts by creation time and never collides."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f") + "-" + uuid.uuid4().hex[:8]
