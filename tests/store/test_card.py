"""Tests of the data card: numbers checked against a tiny hand-built store, figures written."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

from metagen.store import StoreMetadata, card, create_store, write_partition, write_run
from metagen.store.card import safe_name, write_card
from metagen.store.records import run_file_table, split_run_tables
from metagen.store.schema import SCHEMA_VERSION
from tests import factories

TRAIN_TIME = 30.0
EVAL_TIME = 6.0
"""Seconds per epoch in the fixture: every epoch costs 36 s = 0.01 h."""

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def make_run(run_id: str, version: str, dataset: str, model: str, **fields: Any) -> dict[str, Any]:
    """A valid run row (tests.factories) with this card's provenance; ``fields`` override the defaults."""
    defaults = {
        "pct_to_freeze": 0.0, "drop": 0.0, "smoothing": 0.1, "opt": "adamw", "warmup_lr": 1e-6, "max_epochs": 4,
        "pretrained_source": f"hub:timm/{model}", "hardware": "NVIDIA H100 80GB",
        "package_versions": {"torch": "2.3.0", "timm": "1.0.9"}, "train_size": 800,
    }  # fmt: skip
    return factories.make_run(run_id, dataset=dataset, version=version, model=model, **{**defaults, **fields})


def make_curve(n_epochs: int, nan_from: int | None = None) -> list[dict[str, Any]]:
    """``n_epochs`` epochs of 36 s each; losses and accuracy NaN from epoch ``nan_from`` on."""
    rows = []
    for epoch in range(1, n_epochs + 1):
        bad = nan_from is not None and epoch >= nan_from
        rows.append(
            {
                "epoch": epoch,
                "train_loss": math.nan if bad else 2.0 / epoch,
                "eval_loss": math.nan if bad else 2.5 / epoch,
                "eval_top1": math.nan if bad else 0.1 * epoch,
                "train_time": TRAIN_TIME,
                "eval_time": EVAL_TIME,
            }
        )
    return rows


def build_measured_store(root: Path) -> None:
    """Two versions, three datasets, two models; ``micro`` as loose files, ``mini`` as compacted parts.

    micro: 4 runs (2 ok, 1 diverged with a NaN epoch, 1 timeout), 4 + 4 + 2 + 3 = 13 epochs, 2 pipelines.
    mini: 3 runs (all ok), 3 x 5 = 15 epochs, 3 pipelines (one resnet18 run has another lr).
    """
    create_store(
        root,
        StoreMetadata(
            name="qt test/store",
            description="A tiny store for the card test.",
            deviations=("validation on a 20% split", "no AMP on CPU"),
            generator={"tool": "pytest", "version": 1},
        ),
    )
    write_run(root, make_run("m1", "micro", "BRD", "resnet18"), make_curve(4))
    write_run(root, make_run("m2", "micro", "BRD", "vit_tiny"), make_curve(4))
    write_run(root, make_run("m3", "micro", "PLK", "resnet18", status="diverged"), make_curve(2, nan_from=2))
    write_run(root, make_run("m4", "micro", "PLK", "vit_tiny", status="timeout", time_cap_s=108.0), make_curve(3))
    mini = {
        "BRD": [make_run("n1", "mini", "BRD", "resnet18", max_epochs=5)],
        "TEX": [
            make_run("n2", "mini", "TEX", "vit_tiny", max_epochs=5),
            make_run("n3", "mini", "TEX", "resnet18", max_epochs=5, lr=1e-2),
        ],
    }
    for runs in mini.values():
        table = pa.concat_tables([run_file_table(r, make_curve(5)) for r in runs])
        write_partition(root, *split_run_tables(table))


def section(md: str, title: str) -> str:
    """The text of the ``## title`` section of a card."""
    start = md.index(f"## {title}\n")
    end = md.find("\n## ", start + 1)
    return md[start : end if end >= 0 else len(md)]


@pytest.fixture(scope="module")
def measured_card(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The card of the measured fixture store: (markdown path, text)."""
    tmp = tmp_path_factory.mktemp("card")
    build_measured_store(tmp / "store")
    path = write_card(tmp / "store", tmp / "cards")
    return path, path.read_text()


def test_card_path_and_name(measured_card: tuple[Path, str]) -> None:
    path, md = measured_card
    assert path.name == "qt-test-store.md"
    assert md.startswith("# Data card: qt test/store\n")
    assert "A tiny store for the card test." in md
    assert safe_name("../a b//c") == "a-b-c"


def test_sizes_per_version(measured_card: tuple[Path, str]) -> None:
    sizes = section(measured_card[1], "Size")
    # version | datasets | runs | epochs | pipelines | models | mean curve length
    assert "| micro | 2 | 4 | 13 | 2 | 2 | 3.25 |" in sizes
    assert "| mini | 2 | 3 | 15 | 3 | 2 | 5 |" in sizes
    # Pipelines are model + hyperparameters, shared across versions: 2 default ones + resnet18 with lr 1e-2.
    assert "| **all** | 4 | 7 | 28 | 3 | 2 | 4 |" in sizes


def test_status_counts(measured_card: tuple[Path, str]) -> None:
    status = section(measured_card[1], "Run status")
    assert "| version | ok | diverged | timeout | oom | error | total |" in status
    assert "| micro | 2 | 1 | 1 | 0 | 0 | 4 |" in status
    assert "| mini | 3 | 0 | 0 | 0 | 0 | 3 |" in status


def test_compute_hours(measured_card: tuple[Path, str]) -> None:
    compute = section(measured_card[1], "Compute")
    per_epoch = TRAIN_TIME + EVAL_TIME  # 36 s
    assert f"| micro | {13 * per_epoch:,.0f} | {13 * per_epoch / 3600:.3f} |" in compute  # 468 s, 0.130 h
    assert f"| mini | {15 * per_epoch:,.0f} | {15 * per_epoch / 3600:.3f} |" in compute  # 540 s, 0.150 h
    assert "| **all** | 1,008 | 0.280 |" in compute
    assert "GPU-hours equivalent: **0.280 h**" in compute
    assert "measured per-epoch" in compute


def test_compute_hours_are_named_for_the_device() -> None:
    from metagen.store.card import _hours_name

    def runs(*hw: str | None) -> pl.DataFrame:
        return pl.DataFrame({"hardware": list(hw)}, schema={"hardware": pl.String})

    assert _hours_name(runs("cpu x2 (1 threads, x86_64)", "cpu x16 (1 threads, x86_64)")) == "CPU-hours"
    assert _hours_name(runs("NVIDIA H100 80GB", None)) == "GPU-hours"
    assert _hours_name(runs("cpu x2 (1 threads, x86_64)", "NVIDIA H100 80GB")).startswith("Device-hours")


def test_curves_models_datasets(measured_card: tuple[Path, str]) -> None:
    md = measured_card[1]
    curves = section(md, "Curves")
    # micro: finals 0.4, 0.4, NaN (diverged), 0.3 -> 3 finite; mini: 0.5 x 3.
    assert "| micro | 4 | 3 | 0.300 | 0.400 | 0.400 | 0.400 | 0.400 |" in curves
    assert "| mini | 3 | 3 | 0.500 | 0.500 | 0.500 | 0.500 | 0.500 |" in curves
    models = section(md, "Curves per model")
    assert "| resnet18 | 2 | 2 | 4 |" in models
    assert "| vit_tiny | 2 | 1 | 3 |" in models
    datasets = section(md, "Curves per dataset")
    assert "| micro | PLK | 2 | 5 | 2 | 2 |" in datasets
    assert "| mini | TEX | 2 | 10 | 2 | 2 |" in datasets
    features = section(md, "Meta-feature ranges")
    assert "| micro | 800 | 20 | 128 | 3 |" in features


def test_provenance_and_deviations(measured_card: tuple[Path, str]) -> None:
    md = measured_card[1]
    provenance = section(md, "Provenance")
    assert f"- Schema version: {SCHEMA_VERSION}" in provenance
    assert '"tool": "pytest"' in provenance
    assert "| metagen | 7 |" in provenance
    assert "| hub:timm/resnet18 | 4 |" in provenance
    assert "| NVIDIA H100 80GB | 7 |" in provenance
    assert "| torch | 2.3.0 | 7 |" in provenance
    deviations = section(md, "Known deviations")
    assert "- validation on a 20% split" in deviations
    assert "- no AMP on CPU" in deviations
    assert "SYNTHETIC" not in md


def test_figures_written_and_linked(measured_card: tuple[Path, str]) -> None:
    path, md = measured_card
    names = ["curve_lengths", "final_accuracy", "runs_per_model", "runs_per_dataset", "runs_heatmap"]
    for name in names:
        png = path.parent / "qt-test-store" / f"{name}.png"
        assert f"](qt-test-store/{name}.png)" in md
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000


def test_long_tables_are_cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_measured_store(tmp_path / "store")
    monkeypatch.setattr(card, "MAX_TABLE_ROWS", 1)
    md = write_card(tmp_path / "store", tmp_path / "cards").read_text()
    models = section(md, "Curves per model")
    assert "| resnet18 |" in models and "| vit_tiny |" not in models
    assert "*Top 1 of 2 models; see the figure.*" in models
    datasets = section(md, "Curves per dataset")
    assert "*The 5 datasets with most runs of each version (4 of 4);" in datasets


def test_synthetic_store_has_banner(tmp_path: Path) -> None:
    create_store(tmp_path / "s", StoreMetadata(name="synth", synthetic=True))
    run = make_run("s1", "micro", "BRD", "resnet18", source="synthetic", package_versions=None, hardware=None)
    write_run(tmp_path / "s", run, make_curve(2))
    md = write_card(tmp_path / "s", tmp_path / "cards").read_text()
    assert "SYNTHETIC DATA: for scale and performance work only; not measured." in md
    assert md.index("SYNTHETIC") < md.index("## Size")
    assert "None recorded." in section(md, "Known deviations")
    assert "synthetic (generated, not measured)" in section(md, "Compute")
    assert "| *(not recorded)* | 1 |" in section(md, "Provenance")


def test_empty_store(tmp_path: Path) -> None:
    create_store(tmp_path / "e", StoreMetadata(name="empty"))
    path = write_card(tmp_path / "e", tmp_path / "cards")
    md = path.read_text()
    assert "The store holds no runs yet." in md
    assert not any((path.parent / "empty").iterdir())
