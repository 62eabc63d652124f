"""Import the original Quick-Tune meta-dataset (arXiv 2306.03828) into a learning-curve store.

Two layouts are found automatically:

* **aggregated** (what the released zips hold): ``<src>/<version>/<curve>.json``, each mapping
  ``{dataset key: {run id: [value per epoch]}}``, plus ``<src>/<version>/args.json`` mapping
  ``{run id: args}``. The extra ``qt_metadataset/`` level (``<src>/qt_metadataset/<version>/``) is
  accepted too. ``eval_top1``, ``train_time`` and ``eval_time`` are required. The other curves
  (``train_loss``, ``train_head_grad_norm``, ``train_backbone_grad_norm``, ``eval_loss``,
  ``eval_top5``, ``lr``) are optional.
* **raw** (the input of Quick-Tune's ``aggregate_curves``): ``<src>/args/<version>/<run>.yaml``
  and ``<src>/curves/<version>/<run>.csv``. The csv is timm's ``summary.csv`` saved by pandas, so
  an unnamed index column comes first. A csv without that column, starting with ``epoch``, is
  read too.

Meta-features come from ``dataset-meta-features/<superset>/meta-features.json``, next to the
versions (aggregated) or in ``<src>`` (raw). ``<superset>`` is ``meta-album`` for micro, mini and
extended, otherwise the version. A raw source may also have ``<src>/meta-features.json``. The
file holds parallel lists ``dataset_names`` (``micro/set1/PNU``) and ``dataset_descriptors``
(``[n_train, n_classes, resolution, channels]``); ``hessians`` are ignored. A dataset key
matches a name that it ends with. Without the file, meta-features are NULL.

Mapping decisions (listed in the store's ``deviations`` too):

* Model: the current timm name, through the search space's aliases (``beit_large_patch16_512`` ->
  ``beit_large_patch16_512.in22k_ft_in22k_in1k``); names the space does not know are kept.
* Dataset: the last component of the key (``mtlbm/micro/set1/PNU`` -> ``PNU``). The version is
  the directory name. Run id: ``<version>-<original run id>``, made file-name safe. The full keys, in the
  order of ``eval_top1.json`` (raw layout: of first appearance over the run files sorted by name), are kept
  in ``store.json`` (``generator.dataset_keys``): the paper's meta-training folds shuffle that list
  (:func:`surrogates.folds.paper_splits`).
* Accuracies (``eval_top1``, ``eval_top5``) are in percent in Quick-Tune and are divided by 100.
  Times are seconds per epoch, as in the source. The ``epoch`` curve is dropped: the store
  numbers epochs 1, 2, ... by position.
* Hyperparameters: the schema's columns are copied from args and ``model`` goes in its own
  column. ``opt_betas`` lists become ``"b1 b2"``. The ``trivial_augment`` / ``random_augment``
  flags and the ``auto_augment`` policy give ``data_augmentation``. Inactive conditionals, which
  the originals hold at parser defaults, become NULL. Other args keys are not stored, except:
  ``epochs`` -> ``max_epochs`` (default 50), ``seed`` -> ``seed`` (default 0), ``num_classes``
  (used when the meta-features lack it), ``final_batch_size``, ``invalid_loss_value`` (true ->
  diverged), and ``max_memory_allocated`` -> ``peak_memory`` of the last epoch. That value is
  ``torch.cuda.max_memory_allocated()`` in bytes over the whole run.
* Status: ``diverged`` if ``invalid_loss_value`` is true or ``train_loss`` / ``eval_top1`` is NaN
  (the curve is kept up to and including the first NaN epoch). Otherwise ``ok`` if the curve has
  ``max_epochs`` epochs. Otherwise ``timeout``, which is inferred: the data does not say why a run
  stopped early.
* ``pretrained_source`` is ``hub:timm/<model>``: Quick-Tune finetuned timm's pretrained weights.
* Raw layout: the filters of Quick-Tune's ``aggregate_curves`` are applied, and each skipped run
  is reported with its reason:

  1. at most 52 rows are read;
  2. a curve with fewer than 2 rows whose first ``eval_top1`` is 0 or NaN is skipped;
  3. a curve of exactly 26 rows whose ``eval_top1`` drops by more than 20 points from row 25 to
     row 26 in an ``amp`` run loses row 26 (an fp16 collapse);
  4. a file that cannot be read, or that lacks one of the ten summary columns, is skipped.

  Quick-Tune also skips a curve whose accuracy columns pandas reads as integers. pandas never
  writes these float columns that way, so integer-typed columns are accepted here.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from metagen.store.importers.common import (
    ImportedRun,
    ImportReport,
    ImportSourceError,
    SkipRun,
    current_model_name,
    dataset_name_of,
    fill_notes,
    finish_run,
    hyperparameters_from,
    is_missing,
    positive_int,
    run_id_for,
    source_order,
    to_bool,
    to_float,
    to_int,
    write_import,
)
from metagen.store.layout import DATASET_KEYS, StoreMetadata

SOURCE = "import-quicktune"
CURVE_NAMES = (
    "epoch",
    "train_loss",
    "train_head_grad_norm",
    "train_backbone_grad_norm",
    "train_time",
    "eval_loss",
    "eval_top1",
    "eval_top5",
    "eval_time",
    "lr",
)
"""The columns of timm's summary.csv and the curve files of the aggregated layout."""
REQUIRED_CURVES = ("eval_top1", "train_time", "eval_time")
STORE_COLUMN = {
    "train_loss": "train_loss",
    "train_head_grad_norm": "head_grad_norm",
    "train_backbone_grad_norm": "backbone_grad_norm",
    "train_time": "train_time",
    "eval_loss": "eval_loss",
    "eval_top1": "eval_top1",
    "eval_top5": "eval_top5",
    "eval_time": "eval_time",
    "lr": "lr",
}
"""Quick-Tune curve name -> store curve column (``epoch`` is not stored)."""
PERCENT_CURVES = ("eval_top1", "eval_top5")
MAX_RAW_ROWS = 52
DEFAULT_MAX_EPOCHS = 50
META_ALBUM_VERSIONS = ("micro", "mini", "extended")

DEVIATIONS = (
    "Quick-Tune import: accuracies were stored in percent and are divided by 100.",
    "Quick-Tune import: the 'epoch' curve is dropped; epochs are numbered 1, 2, ... by position.",
    "Quick-Tune import: datasets are named by the last component of the original key "
    "(mtlbm/micro/set1/PNU -> PNU), the full keys are kept in store.json (generator.dataset_keys, in the source's "
    "order, from which the paper's folds are built); run ids are '<version>-<original run id>'.",
    "Quick-Tune import: inactive conditional hyperparameters, which the originals hold at parser defaults, are NULL.",
    "Quick-Tune import: data_augmentation is derived from the trivial_augment / random_augment flags and the "
    "auto_augment policy; opt_betas lists are stored as 'b1 b2' strings.",
    "Quick-Tune import: args keys other than the schema's hyperparameters, epochs, seed, num_classes, "
    "final_batch_size, invalid_loss_value and max_memory_allocated are not stored.",
    "Quick-Tune import: status is inferred: diverged if invalid_loss_value or a NaN train_loss/eval_top1 (the curve "
    "is kept up to the first NaN epoch); ok if the curve reaches max_epochs (args 'epochs', default 50); otherwise "
    "timeout, though the source does not say why the run stopped.",
    "Quick-Tune import: peak_memory is max_memory_allocated (bytes, whole run), stored on the last epoch only.",
    "Quick-Tune import: pretrained_source is assumed to be hub:timm/<model> (pretrained timm weights).",
    "Quick-Tune import: hyperparameters missing from args take the finetune.py parser defaults.",
    "Quick-Tune import: models are stored under their current timm names (the search space's aliases map the "
    "paper's old names, e.g. beit_large_patch16_512 -> beit_large_patch16_512.in22k_ft_in22k_in1k).",
)
RAW_DEVIATIONS = (
    "Quick-Tune raw import: Quick-Tune's aggregate_curves filters are applied (at most 52 rows; a curve of fewer "
    "than 2 rows with eval_top1 0/NaN is skipped; row 26 of a 26-row AMP curve that drops > 20 points is removed). "
    "Integer-typed accuracy columns are accepted.",
)

MetaTable = dict[str, list[Any]]


def import_quicktune(src: str | Path, dest: str | Path, name: str | None = None) -> ImportReport:
    """Import a Quick-Tune meta-dataset (aggregated or raw layout, auto-detected) into a store.

    Args:
        src: the meta-dataset directory (see the module docstring for the layouts).
        dest: the store; it is created if it does not exist.
        name: the store's name when it is created (default: the name of ``src``).

    Returns:
        What was imported and what was skipped, and why.

    Raises:
        ImportSourceError: ``src`` is in neither layout, or a file of it is missing or broken.
        RunConflictError: ``dest`` holds one of the run ids with other content.
    """
    src = Path(src)
    report = ImportReport(source=str(src))
    layout, base, versions = _detect_layout(src)
    deviations: tuple[str, ...] = DEVIATIONS
    read = _read_raw_version if layout == "raw" else _read_aggregated_version
    runs: list[ImportedRun] = []
    keys: dict[str, list[str]] = {}
    for v in versions:
        version_runs, keys[v] = read(src if layout == "raw" else base, v, report)
        runs += version_runs
    if layout == "raw":
        deviations += RAW_DEVIATIONS
    report.versions = list(versions)
    metadata = StoreMetadata(
        name=name or src.name,
        description=f"Quick-Tune meta-dataset ({layout} layout) imported from {src.name}",
        deviations=deviations,
        generator={"importers": [SOURCE], DATASET_KEYS: keys},
    )
    write_import(dest, metadata, runs, report)
    return report


# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------


def _detect_layout(src: Path) -> tuple[str, Path, list[str]]:
    """(``"raw"`` or ``"aggregated"``, the directory that holds the versions, the versions)."""
    if not src.is_dir():
        raise ImportSourceError(f"{src} is not a directory; pass the Quick-Tune meta-dataset directory")
    args_dir, curves_dir = src / "args", src / "curves"
    if args_dir.is_dir() and curves_dir.is_dir():
        versions = sorted(d.name for d in curves_dir.iterdir() if d.is_dir())
        if not versions:
            raise ImportSourceError(f"{curves_dir} has no version directories (curves/<version>/<run>.csv)")
        return "raw", src, versions
    if args_dir.is_dir() != curves_dir.is_dir():
        missing = curves_dir if args_dir.is_dir() else args_dir
        raise ImportSourceError(f"{missing} is missing; the raw Quick-Tune layout needs both args/ and curves/")
    for base in (src / "qt_metadataset", src):
        versions = [d.name for d in sorted(base.glob("*")) if d.is_dir() and _is_version_dir(d)]
        if versions:
            return "aggregated", base, versions
    raise ImportSourceError(
        f"{src} is not a Quick-Tune meta-dataset: expected <src>/<version>/eval_top1.json and args.json "
        "(aggregated, optionally under qt_metadataset/), or <src>/args/<version>/<run>.yaml with "
        "<src>/curves/<version>/<run>.csv (raw)"
    )


def _is_version_dir(d: Path) -> bool:
    return (d / "args.json").is_file() or any((d / f"{c}.json").is_file() for c in CURVE_NAMES)


# --------------------------------------------------------------------------------------------
# Aggregated layout
# --------------------------------------------------------------------------------------------


def _read_aggregated_version(base: Path, version: str, report: ImportReport) -> tuple[list[ImportedRun], list[str]]:
    """The runs of one version of the aggregated layout, and its dataset keys in ``eval_top1.json``'s order (the
    order Quick-Tune's ``get_datasets`` returns and its meta-training folds shuffle)."""
    directory = base / version
    args_path = directory / "args.json"
    if not args_path.is_file():
        raise ImportSourceError(f"{args_path} is missing; the aggregated layout needs args.json beside the curves")
    args = _load_json(args_path)
    if not isinstance(args, dict) or not all(isinstance(a, dict) for a in args.values()):
        raise ImportSourceError(f"{args_path} is not a JSON object {{run id: {{argument: value}}}}")
    curves = _load_curves(directory)
    runs_of = _check_run_ids(directory, curves, args)
    meta = _load_meta_features(base, version, report)
    filled: Counter[str] = Counter()
    out = []
    for key, run in runs_of:
        values = {name: c.get(key, {}).get(run) for name, c in curves.items()}
        try:
            out.append(_qt_run(version, key, run, args[run], values, meta, filled))
        except SkipRun as e:
            report.skip(f"{version}/{run}", str(e))
    report.notes += fill_notes(filled, str(args_path))
    return out, list(curves["eval_top1"])


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ImportSourceError(f"{path} is not readable JSON ({e}); extract the meta-dataset again") from e


def _load_curves(directory: Path) -> dict[str, dict[str, dict[str, list[Any]]]]:
    """Curve name -> {dataset key: {run id: values}} for each curve file present."""
    curves = {}
    for name in CURVE_NAMES[1:]:
        path = directory / f"{name}.json"
        if not path.is_file():
            if name in REQUIRED_CURVES:
                raise ImportSourceError(f"{path} is missing; the aggregated layout needs {', '.join(REQUIRED_CURVES)}")
            continue
        data = _load_json(path)
        if not _is_curve_mapping(data):
            raise ImportSourceError(f"{path} is not a JSON object {{dataset: {{run id: [value per epoch]}}}}")
        curves[name] = data
    return curves


def _is_curve_mapping(data: Any) -> bool:
    return isinstance(data, dict) and all(
        isinstance(runs, dict) and all(isinstance(v, list) for v in runs.values()) for runs in data.values()
    )


def _check_run_ids(directory: Path, curves: dict[str, Any], args: dict[str, Any]) -> list[tuple[str, str]]:
    """The (dataset key, run id) pairs of the version, after checking the required files agree on them."""
    pairs = [(key, run) for key, runs in curves["eval_top1"].items() for run in runs]
    expected = set(pairs)
    for name in REQUIRED_CURVES[1:]:
        got = {(key, run) for key, runs in curves[name].items() for run in runs}
        if got != expected:
            pair_diff = sorted(got ^ expected)[:5]
            raise ImportSourceError(
                f"{directory / (name + '.json')} and {directory / 'eval_top1.json'} hold different runs "
                f"(e.g. {pair_diff}); the files must come from one aggregation"
            )
    runs = Counter(run for _, run in pairs)
    twice = sorted(r for r, n in runs.items() if n > 1)
    if twice:
        raise ImportSourceError(f"{directory / 'eval_top1.json'}: run(s) {twice[:5]} appear under several datasets")
    if set(runs) != set(args):
        diff = sorted(set(runs) ^ set(args))[:5]
        raise ImportSourceError(
            f"{directory / 'args.json'} and {directory / 'eval_top1.json'} hold different run ids (e.g. {diff}); "
            "the files must come from one aggregation"
        )
    return pairs


# --------------------------------------------------------------------------------------------
# Raw layout
# --------------------------------------------------------------------------------------------


def _read_raw_version(src: Path, version: str, report: ImportReport) -> tuple[list[ImportedRun], list[str]]:
    """The runs of one version of the raw layout, filtered as ``aggregate_curves`` does, and its dataset keys in
    order of first appearance over the run files sorted by name (``aggregate_curves`` lists them in the file system's
    order, which a copy does not keep)."""
    curves_dir, args_dir = src / "curves" / version, src / "args" / version
    meta = _load_meta_features(src, version, report)
    filled: Counter[str] = Counter()
    out = []
    keys = []
    csvs = sorted(curves_dir.glob("*.csv"))
    for csv in csvs:
        source_id = f"{version}/{csv.stem}"
        try:
            args = _read_args_yaml(args_dir / f"{csv.stem}.yaml")
            values = _read_summary_csv(csv)
            values = _aggregate_filters(values, args, source_id, report)
            key = args.get("dataset")
            if not isinstance(key, str) or not key:
                raise SkipRun(f"{args_dir / (csv.stem + '.yaml')} has no 'dataset'")
            keys.append(key)
            out.append(_qt_run(version, key, csv.stem, args, values, meta, filled))
        except SkipRun as e:
            report.skip(source_id, str(e))
    stems = {c.stem for c in csvs}
    for y in sorted(args_dir.glob("*.yaml")):
        if y.stem not in stems:
            report.skip(f"{version}/{y.stem}", f"no curve file {curves_dir / (y.stem + '.csv')}")
    report.notes += fill_notes(filled, str(args_dir))
    return out, source_order(keys)


def _read_args_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SkipRun(f"no args file {path}")
    try:
        args = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise SkipRun(f"{path} is not readable YAML ({e})") from e
    if not isinstance(args, dict):
        raise SkipRun(f"{path} is not a YAML mapping of arguments")
    return args


def _read_summary_csv(path: Path) -> dict[str, list[float]]:
    """Curve name -> values of a raw summary csv (at most 52 rows)."""
    try:
        frame = pl.read_csv(path, n_rows=MAX_RAW_ROWS, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as e:
        raise SkipRun(f"{path} is not a readable csv ({e})") from e
    if frame.width and frame.columns[0] != "epoch":
        frame = frame.drop(frame.columns[0])  # pandas' unnamed index column
    missing = [c for c in CURVE_NAMES if c not in frame.columns]
    if missing:
        raise SkipRun(f"{path} lacks column(s) {missing}")
    try:
        return {c: frame[c].cast(pl.Float64).fill_null(math.nan).to_list() for c in CURVE_NAMES}
    except pl.exceptions.PolarsError as e:
        raise SkipRun(f"{path} holds a value that is not a number ({e})") from e


def _aggregate_filters(
    values: dict[str, list[float]], args: dict[str, Any], source_id: str, report: ImportReport
) -> dict[str, list[float]]:
    """Quick-Tune's ``aggregate_curves`` filters (rules 2 and 3 of the module docstring)."""
    top1 = values["eval_top1"]
    if len(top1) < 2:
        if not top1 or top1[0] == 0.0 or math.isnan(top1[0]):
            raise SkipRun("fewer than 2 epochs and the first eval_top1 is 0 or NaN (aggregate_curves filter)")
    elif len(top1) == 26 and top1[24] - top1[25] > 20 and _flag(args.get("amp")):
        values = {k: v[:25] for k, v in values.items()}
        report.notes.append(f"{source_id}: dropped epoch 26, an AMP accuracy collapse (aggregate_curves filter)")
    return values


def _flag(value: Any) -> bool:
    try:
        return not is_missing(value) and to_bool(value)
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------
# Meta-features
# --------------------------------------------------------------------------------------------


def _load_meta_features(base: Path, version: str, report: ImportReport) -> MetaTable | None:
    """Dataset name -> ``[n_train, n_classes, resolution, channels]``, or None without a file."""
    superset = "meta-album" if version in META_ALBUM_VERSIONS else version
    candidates = [base / "dataset-meta-features" / superset / "meta-features.json", base / "meta-features.json"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        report.notes.append(f"version {version}: no meta-features file ({candidates[0]}); meta-features are NULL")
        return None
    data = _load_json(path)
    names = data.get("dataset_names") if isinstance(data, dict) else None
    descriptors = data.get("dataset_descriptors") if isinstance(data, dict) else None
    if not (isinstance(names, list) and isinstance(descriptors, list) and len(names) == len(descriptors)):
        raise ImportSourceError(
            f"{path} needs parallel lists 'dataset_names' and 'dataset_descriptors' of the same length"
        )
    if not all(isinstance(d, list) and len(d) == 4 for d in descriptors):
        raise ImportSourceError(f"{path}: each dataset descriptor must be [n_train, n_classes, resolution, channels]")
    return dict(zip(names, descriptors, strict=True))


def _meta_for(key: str, meta: MetaTable | None) -> dict[str, int | None]:
    """The meta-feature columns of a dataset key (NULL when unknown)."""
    row = None
    if meta is not None:
        row = meta.get(key) or next((d for n, d in meta.items() if key.endswith("/" + n.strip("/"))), None)
    names = ("train_size", "num_classes", "resolution", "channels")
    if row is None:
        return dict.fromkeys(names)
    try:
        return {n: positive_int(v) for n, v in zip(names, row, strict=True)}
    except (TypeError, ValueError) as e:
        raise SkipRun(f"meta-features of '{key}' are not numbers: {row!r}") from e


# --------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------


def _qt_run(
    version: str,
    key: str,
    run: str,
    args: dict[str, Any],
    values: Mapping[str, list[Any] | None],
    meta: MetaTable | None,
    filled: Counter[str],
) -> ImportedRun:
    """One Quick-Tune run as a store run; SkipRun with the reason if it cannot be imported."""
    model = args.get("model")
    if is_missing(model) or not isinstance(model, str):
        raise SkipRun("args have no 'model'")
    model = current_model_name(model)
    hps, defaults = hyperparameters_from(args)
    filled.update(defaults)
    fields = {
        "run_id": run_id_for(version, run),
        "dataset": dataset_name_of(key),
        "dataset_version": version,
        "model": model,
        **hps,
        "extra_hps": "{}",
        "seed": _int_arg(args, "seed", 0),
        "final_batch_size": _positive_arg(args, "final_batch_size"),
        "source": SOURCE,
        "pretrained_source": f"hub:timm/{model}",
        **_meta_for(key, meta),
    }
    if fields["num_classes"] is None:
        fields["num_classes"] = _positive_arg(args, "num_classes")
    return finish_run(
        f"{version}/{run}",
        key,
        fields,
        _curve(values),
        max_epochs=_int_arg(args, "epochs", DEFAULT_MAX_EPOCHS),
        diverged=_flag(args.get("invalid_loss_value")),
        peak_memory=_memory(args.get("max_memory_allocated")),
    )


def _curve(values: Mapping[str, list[Any] | None]) -> dict[str, list[float]]:
    """Store curve columns from Quick-Tune curves (percent -> fraction; absent curves left out)."""
    out = {}
    for name, column in STORE_COLUMN.items():
        raw = values.get(name)
        if raw is None:
            continue
        try:
            floats = [to_float(v) for v in raw]
        except (TypeError, ValueError) as e:
            raise SkipRun(f"curve '{name}' holds a value that is not a number ({e})") from e
        out[column] = [v / 100.0 for v in floats] if name in PERCENT_CURVES else floats
    return out


def _int_arg(args: dict[str, Any], key: str, default: int) -> int:
    value = args.get(key)
    if is_missing(value):
        return default
    try:
        return to_int(value)
    except (TypeError, ValueError) as e:
        raise SkipRun(f"argument '{key}' is not an integer: {value!r}") from e


def _positive_arg(args: dict[str, Any], key: str) -> int | None:
    try:
        return positive_int(args.get(key))
    except (TypeError, ValueError) as e:
        raise SkipRun(f"argument '{key}' is not a number: {args.get(key)!r}") from e


def _memory(value: Any) -> int | None:
    if is_missing(value):
        return None
    try:
        memory = to_int(value)
    except (TypeError, ValueError) as e:
        raise SkipRun(f"argument 'max_memory_allocated' is not a byte count: {value!r}") from e
    return memory if memory >= 0 else None
