"""A derived, rebuildable dense-array view of one version's compacted parts, for fast loading.

``compacted/version=<v>/_arrays.arrow`` is an Arrow IPC file with one row per run (dataset, run
id, pipeline id, model, status, epochs) and the validation top-1 and per-epoch train/eval times as
fixed-width lists, NaN-padded to the version's widest curve. It is what
:meth:`~metagen.store.reader.StoreReader.version_arrays` reads, memory-mapped, instead of two
Parquet files per dataset.

The Parquet parts stay the only source of truth: the view records a token of the part files it
was built from, and the reader uses it only when that token matches the parts on disk and the
version has no loose run files. ``compact`` (and the bulk writers) rebuild it; deleting it is
always safe. Imports neither torch nor timm.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from metagen.store.layout import COMPACTED_DIR, encode_component, temp_path

VIEW_NAME = "_arrays.arrow"
VIEW_METRIC = "eval_top1"
VIEW_COMPRESSION = "lz4"  # NaN padding and repeated strings compress well; lz4 decodes at memory speed
TOKEN_KEY = b"metagen.array_view_token"
_STRINGS = ("dataset", "run_id", "pipeline_id", "model", "status")
_LISTS = ("values", "train_time", "eval_time")


def view_path(root: str | Path, version: str) -> Path:
    """Where the array view of ``version`` lives."""
    return Path(root) / COMPACTED_DIR / f"version={encode_component(version)}" / VIEW_NAME


def parts_token(runs_files: Sequence[Path]) -> str:
    """A token of the compacted parts a view is built from (part names are unique per write)."""
    names = sorted(f"{p.parent.name}/{p.name}" for p in runs_files)
    return hashlib.sha1("\n".join(names).encode()).hexdigest()


def write_view(root: str | Path, version: str, columns: Mapping[str, np.ndarray], token: str) -> Path:
    """Write the view of ``version`` atomically (a derived file, so replacing it is safe).

    Args:
        columns: ``dataset, run_id, pipeline_id, model, status`` ``(n,)`` strings; ``n_epochs``
            ``(n,)`` int; ``values, train_time, eval_time`` ``(n, width)`` float32, NaN-padded.
    """
    width = columns["values"].shape[1]
    arrays: dict[str, pa.Array] = {k: pa.array(np.asarray(columns[k], dtype=object), pa.string()) for k in _STRINGS}
    arrays["n_epochs"] = pa.array(np.asarray(columns["n_epochs"], dtype=np.int32))
    for k in _LISTS:
        flat = pa.array(np.ascontiguousarray(columns[k], dtype=np.float32).reshape(-1))
        arrays[k] = pa.FixedSizeListArray.from_arrays(flat, width)
    table = pa.table(arrays).replace_schema_metadata({TOKEN_KEY: token.encode()})
    path = view_path(root, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        options = pa.ipc.IpcWriteOptions(compression=VIEW_COMPRESSION)
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema, options=options) as writer:
            writer.write_table(table)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def view_token(root: str | Path, version: str) -> str | None:
    """The token the view of ``version`` was built with (read from its footer), or None if there is none."""
    try:
        with pa.memory_map(str(view_path(root, version))) as source:
            token = (pa.ipc.open_file(source).schema.metadata or {}).get(TOKEN_KEY)
    except (OSError, pa.ArrowInvalid):
        return None
    return None if token is None else token.decode()


def read_view(root: str | Path, version: str, token: str) -> dict[str, np.ndarray] | None:
    """The columns of a view (see :func:`write_view`), or None if it is missing, stale or unreadable."""
    path = view_path(root, version)
    try:
        with pa.memory_map(str(path)) as source:
            reader = pa.ipc.open_file(source)
            if (reader.schema.metadata or {}).get(TOKEN_KEY) != token.encode():
                return None
            table = reader.read_all()
            out: dict[str, np.ndarray] = {k: table[k].to_numpy() for k in _STRINGS}
            out["n_epochs"] = table["n_epochs"].to_numpy().copy()
            for k in _LISTS:  # copied out of the mapping before it closes
                lists = table[k].combine_chunks()
                out[k] = lists.values.to_numpy().reshape(len(lists), lists.type.list_size).copy()
    except (OSError, pa.ArrowInvalid):
        return None
    return out
