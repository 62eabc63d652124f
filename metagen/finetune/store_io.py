"""Reading and writing a finetuning run in the learning-curve store."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from metagen.finetune.errors import DatasetContentError, OutputNotWritableError, StoreMissingError
from metagen.finetune.recipe import recipe_of
from metagen.store.errors import StoreNotFoundError, StoreNotWritableError
from metagen.store.files import read_run_file
from metagen.store.layout import (
    LOOSE_DIR,
    check_store_writable,
    check_writable,
    compacted_parts,
    loose_path,
    partition_dir,
    read_metadata,
)
from metagen.store.schema import HYPERPARAMETERS, RECIPE
from metagen.store.writer import write_run


def check_store(root: str | Path) -> None:
    """Raise :class:`StoreMissingError` unless ``root`` is a store."""
    try:
        read_metadata(root)
    except StoreNotFoundError as e:
        raise StoreMissingError(
            f"{root} is not a learning-curve store ({e}); create it first: python -m metagen.store create {root}"
        ) from e


def stored_fingerprints(root: str | Path, version: str, dataset: str) -> set[str]:
    """The dataset fingerprints the store's runs of ``dataset`` (of ``version``) recorded (NULLs left out)."""
    found: set[str] = set()
    partition = partition_dir(root, LOOSE_DIR, version, dataset)
    loose = sorted(p for p in partition.glob("*.parquet") if not p.name.startswith(".")) if partition.is_dir() else []
    for path in loose:  # this dataset's loose runs only: called before every run
        fp = pq.read_table(path, columns=["dataset_fingerprint"]).column(0)[0].as_py()
        found.update([fp] if fp else [])
    for runs_path, _ in compacted_parts(root, version, dataset):
        column = pq.read_table(runs_path, columns=["dataset_fingerprint"]).column(0)
        found.update(fp for fp in column.unique().to_pylist() if fp)
    return found


def check_dataset_content(root: str | Path, version: str, dataset: str, fingerprint: str, path: str | Path) -> None:
    """Raise :class:`DatasetContentError` if the store holds runs of ``dataset`` on another content.

    A dataset is identified in run ids by its name; this makes the name mean one content, so a copied
    folder with other labels or images is never served the stored curves of the original.
    """
    other = stored_fingerprints(root, version, dataset) - {fingerprint}
    if other:
        raise DatasetContentError(
            f"{path}: the store {root} holds runs of dataset {dataset!r} (version {version!r}) trained on other "
            f"content (fingerprint {sorted(other)[0]}, this folder {fingerprint}). Give this dataset another name "
            "(info.json dataset_name) or use another store or version."
        )


def check_outputs(root: str | Path, version: str, dataset: str, checkpoint_dir: str | Path) -> None:
    """Raise :class:`OutputNotWritableError` unless the run's store partition and checkpoint folder are writable."""
    try:
        check_store_writable(root, version, dataset)
        check_writable(checkpoint_dir, "checkpoint_dir")
    except StoreNotWritableError as e:
        raise OutputNotWritableError(str(e)) from e


def stored_run(root: str | Path, version: str, dataset: str, run_id: str) -> dict[str, Any] | None:
    """The stored row (status, n_epochs, max_epochs) of ``run_id``, or ``None`` if the store lacks it."""
    loose = loose_path(root, version, dataset, run_id)
    if loose.is_file():
        runs, _ = read_run_file(loose, check=False)
        return runs.select("status", "n_epochs", "max_epochs").row(0, named=True)
    for runs_path, _ in compacted_parts(root, version, dataset):
        table = pq.read_table(runs_path, columns=["run_id", "status", "n_epochs", "max_epochs"])
        ids = table.column("run_id").to_pylist()
        if run_id in ids:
            i = ids.index(run_id)
            return {k: table.column(k)[i].as_py() for k in ("status", "n_epochs", "max_epochs")}
    return None


def run_row(
    *,
    run_id: str,
    pipeline: str,
    dataset: str,
    version: str,
    model: str,
    hps: Mapping[str, Any],
    seed: int,
    max_epochs: int,
    status: str,
    message: str | None,
    final_batch_size: int | None,
    cap_s: float | None,
    meta_features: Mapping[str, int],
    pretrained_source: str,
    hardware: str,
    package_versions: Mapping[str, str],
    dataset_fingerprint: str | None = None,
    transforms: tuple[str, str] | None = None,
    time_clock: str = "wall",
) -> dict[str, Any]:
    """The runs-table row of a finished run (inactive conditionals NULL, the recipe in its columns, other
    extras in ``extra_hps``; ``transforms`` = the (train, eval) pipelines as run, None when none was built)."""
    extra = {k: v for k, v in hps.items() if k not in HYPERPARAMETERS and k not in RECIPE}
    return {
        "run_id": run_id,
        "pipeline_id": pipeline,
        "dataset": dataset,
        "dataset_version": version,
        "model": model,
        **{k: hps.get(k) for k in HYPERPARAMETERS},
        "extra_hps": json.dumps(extra, sort_keys=True),
        "seed": int(seed),
        "max_epochs": int(max_epochs),
        "status": status,
        "status_message": message,
        "final_batch_size": final_batch_size,
        "time_cap_s": None if cap_s is None else float(cap_s),
        **{k: int(v) for k, v in meta_features.items()},
        "source": "metagen",
        **recipe_of(hps),
        "train_transforms": None if transforms is None else transforms[0],
        "eval_transforms": None if transforms is None else transforms[1],
        "dataset_fingerprint": dataset_fingerprint,
        "time_clock": time_clock,
        "pretrained_source": pretrained_source,
        "hardware": hardware,
        "package_versions": json.dumps(dict(package_versions), sort_keys=True),
    }


def write(root: str | Path, run: Mapping[str, Any], curve: Sequence[Mapping[str, Any]]) -> bool:
    """Write the run; True if written, False if the same content was already there."""
    return write_run(root, run, list(curve)) == "written"
