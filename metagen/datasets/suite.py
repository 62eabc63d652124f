"""A benchmark suite of generated datasets written with one call: ``make_suite`` and ``DEFAULT_SUITE``."""

from __future__ import annotations

import json
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from metagen.datasets.errors import GeneratorArgumentError, OutputExistsError, SourceUnavailableError
from metagen.datasets.make import GENERATOR_VERSION, check_arguments, make_dataset


class SuiteEntry(NamedTuple):
    """One dataset of a suite; ``name`` is its folder and ``dataset_name``."""

    kind: str
    name: str
    n_classes: int
    per_class: int
    resolution: int


DEFAULT_SUITE: tuple[SuiteEntry, ...] = (
    # real photos / scans, upsampled
    SuiteEntry("fashion_mnist", "FSH_10", 10, 40, 32),
    SuiteEntry("fashion_mnist", "FSH_5", 5, 24, 64),
    SuiteEntry("digits", "DIG_10", 10, 40, 32),
    SuiteEntry("digits", "DIG_6", 6, 20, 48),
    # texture / region patches of real images
    SuiteEntry("textures", "TEX_15", 15, 40, 64),
    SuiteEntry("textures", "TEX_8", 8, 30, 32),
    # printed characters (OmniPrint-like)
    SuiteEntry("characters", "OCR_20", 20, 40, 32),
    SuiteEntry("characters", "OCR_12", 12, 24, 48),
    SuiteEntry("characters", "OCR_8", 8, 60, 64),
    # procedural shapes
    SuiteEntry("shapes", "SHP_20", 20, 40, 64),
    SuiteEntry("shapes", "SHP_10", 10, 24, 32),
    SuiteEntry("shapes", "SHP_5", 5, 60, 48),
)
"""12 datasets over 5 kinds, 5-20 classes, 20-60 images per class, 32-64 px (Meta-Album Micro has 20 x 40 at 128 px).

Difficulty varies with the kind (digits and shapes are easier than characters and textures), the number of classes
and the number of training images per class (0.6 x per_class)."""


def load_spec(path: str | Path) -> list[SuiteEntry]:
    """Suite entries from a YAML file ``{datasets: [{kind, name, n_classes, per_class, resolution}, ...]}``."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
        entries = [SuiteEntry(**{f: e[f] for f in SuiteEntry._fields}) for e in data["datasets"]]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        raise GeneratorArgumentError(
            f"{path}: not a suite spec ({e!r}); expected 'datasets:' with entries of {list(SuiteEntry._fields)}"
        ) from e
    return entries


def entry_seed(seed: int, name: str) -> int:
    """Seed of one suite entry: from the suite seed and the entry's name, so adding entries changes no other one."""
    return int(np.random.SeedSequence([seed, zlib.crc32(name.encode())]).generate_state(1)[0])


def make_suite(
    out_dir: str | Path,
    spec: Sequence[SuiteEntry | tuple[str, str, int, int, int]] = DEFAULT_SUITE,
    seed: int = 0,
    *,
    force: bool = False,
    skip_unavailable: bool = False,
    progress: bool = False,
) -> list[Path]:
    """Write every entry of ``spec`` to ``out_dir/<name>`` plus a ``suite.json`` manifest.

    All entries are checked (arguments, unique names, sources installed, free folders) before anything is written.

    Args:
        spec: (kind, name, n_classes, per_class, resolution) tuples.
        seed: suite seed; entry seeds come from :func:`entry_seed`.
        force: replace existing dataset folders.
        skip_unavailable: leave out (with a warning) entries whose source is not installed instead of raising.

    Returns:
        The dataset folders written, in ``spec`` order.
    """
    out_dir = Path(out_dir).expanduser()
    entries = [SuiteEntry(*e) for e in spec]
    if not entries:
        raise GeneratorArgumentError("the suite spec is empty")
    names = [e.name for e in entries]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise GeneratorArgumentError(f"suite entry names must be unique; repeated: {dupes}")
    todo = []
    for e in entries:
        if not e.name or "/" in e.name or e.name.startswith("."):
            raise GeneratorArgumentError(f"suite entry name {e.name!r} must be a plain folder name")
        spec_ = check_arguments(e.kind, e.n_classes, e.per_class, e.resolution, entry_seed(seed, e.name))
        reason = spec_.unavailable()
        if reason and skip_unavailable:
            warnings.warn(f"suite: skipping {e.name} ({e.kind}): {reason}", stacklevel=2)
            continue
        if reason:
            raise SourceUnavailableError(f"suite entry {e.name} ({e.kind}): {reason} (or pass skip_unavailable=True)")
        target = out_dir / e.name
        if not force and target.is_dir() and any(target.iterdir()):
            raise OutputExistsError(f"{target} is not empty; pass force=True (--force) to replace the suite")
        todo.append(e)
    paths = [
        make_dataset(
            e.kind,
            out_dir / e.name,
            n_classes=e.n_classes,
            per_class=e.per_class,
            resolution=e.resolution,
            seed=entry_seed(seed, e.name),
            force=force,
            progress=progress,
        )
        for e in todo
    ]
    manifest = {
        "seed": seed,
        "generator_version": GENERATOR_VERSION,
        "datasets": [{**e._asdict(), "seed": entry_seed(seed, e.name)} for e in todo],
    }
    (out_dir / "suite.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return paths
