"""Tests of the quality report: every column on a hand-made store, the checks, the pixel baseline, the CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from metagen.datasets import load_dataset, split_indices
from metagen.store import StoreMetadata, create_store, write_run
from metagen.store.card import load_runs, write_card
from metagen.store.cli import main
from metagen.store.errors import DatasetFolderError, StoreError
from metagen.store.pixel_baseline import DatasetFacts, find_datasets, logistic_accuracy, pixel_baselines
from metagen.store.quality import (
    NO_FOLDER,
    DatasetQuality,
    Overall,
    checks,
    dataset_facts,
    format_text,
    quality_report,
    spearman,
    store_quality,
)
from metagen.store.reader import StoreReader
from tests import factories

NAN = math.nan


def run(run_id: str, dataset: str, model: str, source: str | None, k: int, **fields: Any) -> dict[str, Any]:
    """A valid run row of version ``v1`` with ``k`` classes, 24 train images of 8 px."""
    defaults = {"num_classes": k, "train_size": 24, "resolution": 8, "pretrained_source": source, "max_epochs": 6}
    return factories.make_run(run_id, dataset=dataset, version="v1", model=model, **{**defaults, **fields})


def curve(early: float, final: float, n: int) -> list[dict[str, Any]]:
    """``n`` epochs whose epoch-5 accuracy is ``early`` (when ``n >= 5``) and last one ``final``; others 0.1."""
    rows = factories.make_curve(n)
    for e, row in enumerate(rows, start=1):
        row["eval_top1"] = final if e == n else (early if e == 5 else 0.1)
        row["eval_top5"] = None
        if math.isnan(row["eval_top1"]):
            row["train_loss"] = row["eval_loss"] = NAN
    return rows


def build_store(root: Path) -> None:
    """Dataset A (4 classes) and B (5 classes), models m1-m3; the expected numbers are worked out in the tests."""
    create_store(root, StoreMetadata(name="quality test"))
    a = [
        ("a1", "m1", "hub:x", curve(0.5, 0.9, 6), {}),
        ("a2", "m2", "random-init", curve(0.3, 0.35, 6), {}),
        ("a3", "m2", "hub:x", curve(0.6, 0.6, 5), {}),
        ("a4", "m3", "random-init", curve(NAN, NAN, 3), {"status": "diverged"}),
        ("a5", "m1", None, curve(0.2, 0.375, 6), {}),  # exactly 1.5x chance: counts as low
    ]
    b: list[tuple[str, str, str | None, list[dict[str, Any]], dict[str, Any]]] = [
        ("b1", "m2", "hub:y", curve(0.5, 0.5, 5), {}),
        ("b2", "m3", "hub:y", curve(0.4, 0.5, 6), {}),  # ties m2's best; m3's median is higher
        ("b3", "m3", "random-init", curve(0.3, 0.3, 5), {}),
        ("b4", "m2", "random-init", curve(0.2, 0.2, 4), {}),
    ]
    for dataset, k, rows in (("A", 4, a), ("B", 5, b)):
        for rid, model, source, c, extra in rows:
            write_run(root, run(rid, dataset, model, source, k, **extra), c)


@pytest.fixture(scope="module")
def hand_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("quality") / "store"
    build_store(root)
    return root


def runs_of(store: Path) -> Any:
    return load_runs(StoreReader(store))


def test_every_column_on_a_hand_made_store(hand_store: Path) -> None:
    report = quality_report(runs_of(hand_store))
    a, b = report.datasets
    assert (a.version, a.dataset, a.n_runs, a.num_classes, a.chance) == ("v1", "A", 5, 4, 0.25)
    assert a.majority is None and a.pixel is None
    assert a.best == pytest.approx(0.9) and a.median == pytest.approx((0.375 + 0.6) / 2)
    assert a.n_finite == 4
    assert (a.n_low, a.low_share) == (3, pytest.approx(0.6))  # a2 (0.35), a4 (diverged), a5 (= 1.5 x 0.25)
    assert a.pretrained_median == pytest.approx(0.75) and a.n_pretrained == 2  # a1, a3; a5 records no source
    assert a.random_median == pytest.approx(0.35) and a.n_random == 2  # a4 has no finite final accuracy
    # a1 (0.5, 0.9), a2 (0.3, 0.35), a3 (0.6, 0.6), a5 (0.2, 0.375): rank differences 1, 1, 1, 1 -> 1 - 24/60
    assert (a.spearman, a.n_spearman) == (pytest.approx(0.6), 4)
    assert (a.best_model, a.best_run) == ("m1", "a1")

    assert (b.n_runs, b.num_classes, b.chance) == (4, 5, 0.2)
    assert b.best == pytest.approx(0.5) and b.median == pytest.approx(0.4)
    assert (b.n_low, b.low_share) == (2, 0.5)  # b3 (0.3 = 1.5 x 0.2), b4
    assert b.pretrained_median == pytest.approx(0.5) and b.random_median == pytest.approx(0.25)
    assert (b.spearman, b.n_spearman) == (pytest.approx(1.5 / math.sqrt(3)), 3)  # b4 has 4 epochs
    assert (b.best_model, b.best_run) == ("m3", "b2")  # tie on best 0.5; m3's median 0.4 > m2's 0.35

    ranks = {(d, m): r for d, m, r in report.ranks.select("dataset", "model", "rank").rows()}
    assert ranks == {("A", "m1"): 1, ("A", "m2"): 2, ("B", "m3"): 1, ("B", "m2"): 2}  # m3 on A: nothing finite
    models = {r["model"]: r for r in report.models.to_dicts()}
    assert (models["m2"]["best_on"], models["m2"]["mean_rank"], models["m2"]["worst_rank"]) == (0, 2.0, 2)
    assert (models["m1"]["datasets"], models["m1"]["best_on"]) == (1, 1)

    o = report.overall
    assert (o.n_datasets, o.n_runs, o.low_share) == (2, 9, pytest.approx(5 / 9))
    assert o.pretrained_median == pytest.approx(0.55) and o.n_pretrained == 4  # 0.9, 0.6, 0.5, 0.5
    assert o.random_median == pytest.approx(0.3) and o.n_random == 4  # 0.35, 0.3, 0.2 (a4 NaN)
    assert o.best_models == ("m1", "m3")


def test_checks_on_the_hand_made_store(hand_store: Path) -> None:
    report = quality_report(runs_of(hand_store))
    status = {c.name: c.status for c in report.checks}
    assert status == {
        "best_vs_chance": "fail",  # B: 0.5 < 3 x 0.2
        "best_vs_pixel": "n/a",  # no dataset folders
        "low_runs": "fail",  # 5/9 > 25 %
        "pretrained_gap": "pass",  # 0.55 - 0.3 = 0.25
        "best_models": "fail",  # m1, m3
    }
    detail = {c.name: c.detail for c in report.checks}
    assert "v1/B (0.500 < 3 x 0.200)" in detail["best_vs_chance"] and "v1/A" not in detail["best_vs_chance"]
    assert detail["low_runs"] == "55.6% of runs do"
    assert "+0.250" in detail["pretrained_gap"]
    assert [c.name for c in report.failed] == ["best_vs_chance", "low_runs", "best_models"]
    text = format_text(report, "quality test")
    assert NO_FOLDER in text and "FAIL" in text and "m3" in text


def quality(name: str, best: float | None, pixel: float | None = None, chance: float | None = 0.25) -> DatasetQuality:
    """A dataset's numbers with only what the checks read set."""
    return DatasetQuality(
        "v", name, 10, None if chance is None else round(1 / chance), chance, None, pixel, best, best, 10, 0.0, 0,
        None, None, 0, 0, None, 0, "m", "r",
    )  # fmt: skip


def summary(low: float | None = 0.1, pre: float | None = 0.6, rnd: float | None = 0.5, n_pre: int = 10,
            n_rnd: int = 5, best: tuple[str, ...] = ("m1", "m2", "m3")) -> Overall:  # fmt: skip
    return Overall(3, 30, low, pre, rnd, n_pre, n_rnd, best)


def by_name(found: tuple[Any, ...]) -> dict[str, str]:
    return {c.name: c.status for c in found}


def test_checks_pass_and_fail_at_their_thresholds() -> None:
    good = [quality("A", 0.75, pixel=0.7), quality("B", 0.9, pixel=0.2)]  # 0.75 = 3 x 0.25 exactly
    assert set(by_name(checks(good, summary(), with_baseline=True)).values()) == {"pass"}
    assert by_name(checks(good, summary(), with_baseline=False))["best_vs_pixel"] == "n/a"

    worse = [quality("A", 0.74, pixel=0.2), quality("B", 0.9, pixel=0.9)]  # a tie does not beat the baseline
    assert by_name(checks(worse, summary(n_rnd=0), True)) == {
        "best_vs_chance": "fail",
        "best_vs_pixel": "fail",
        "low_runs": "pass",
        "pretrained_gap": "n/a",  # no random-init runs
        "best_models": "pass",
    }
    assert by_name(checks(good, summary(low=0.25), True))["low_runs"] == "pass"
    assert by_name(checks(good, summary(low=0.26), True))["low_runs"] == "fail"
    assert by_name(checks(good, summary(pre=0.59), True))["pretrained_gap"] == "fail"
    assert by_name(checks(good, summary(rnd=None), True))["pretrained_gap"] == "fail"
    assert by_name(checks(good, summary(n_pre=0), True))["pretrained_gap"] == "n/a"
    assert by_name(checks(good, summary(best=("m1", "m2")), True))["best_models"] == "fail"
    no_best = [quality("A", None, pixel=0.1)]
    assert by_name(checks(no_best, summary(), True))["best_vs_chance"] == "fail"
    unknown = [quality("A", 0.9, chance=None)]
    assert by_name(checks(unknown, summary(low=None), False))["best_vs_chance"] == "n/a"
    assert by_name(checks(unknown, summary(low=None), False))["low_runs"] == "n/a"


def test_spearman_needs_three_varying_pairs() -> None:
    assert spearman(np.array([0.1, 0.2, np.nan, 0.3]), np.array([0.3, 0.2, 0.5, 0.1])) == (pytest.approx(-1.0), 3)
    assert spearman(np.array([0.1, 0.2]), np.array([0.1, 0.2])) == (None, 2)
    assert spearman(np.array([0.1, 0.1, 0.1]), np.array([0.1, 0.2, 0.3])) == (None, 3)


def test_runs_that_disagree_on_their_dataset_are_an_error(store: Path) -> None:
    write_run(store, run("x1", "A", "m1", "hub:x", 4), curve(0.5, 0.5, 5))
    write_run(store, run("x2", "A", "m1", "hub:x", 5, lr=0.1), curve(0.5, 0.5, 5))
    with pytest.raises(StoreError, match=r"v1/A recorded different num_classes: \[4, 5\]"):
        dataset_facts(runs_of(store))


# ---- pixel baseline -------------------------------------------------------------------------------


def write_dataset(root: Path, name: str, k: int, per_class: int = 10, size: int = 8) -> np.ndarray:
    """A Meta-Album folder whose class c is a flat grey of 40 c + 20 with noise (separable); returns the labels."""
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(1)
    labels = []
    with (root / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["FILE_NAME", "CATEGORY"])
        for i in range(k * per_class):
            c = i % k
            pixels = np.clip(40 * c + 20 + rng.integers(-5, 6, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / "images" / f"{i:03d}.png")
            w.writerow([f"{i:03d}.png", f"c{c}"])
            labels.append(c)
    (root / "info.json").write_text(json.dumps({"dataset_name": name}))
    return np.array(labels)


def test_logistic_accuracy_on_separable_and_noise() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    x = rng.normal(size=(40, 5)) + 4 * y[:, None]
    assert logistic_accuracy(x[::2], y[::2], x[1::2], y[1::2]) == 1.0
    with pytest.raises(DatasetFolderError, match="at least 2 classes"):
        logistic_accuracy(x[:10], y[:10], x[10:], y[10:])


def test_pixel_baseline_matches_folders_by_name(tmp_path: Path) -> None:
    labels = write_dataset(tmp_path / "sets" / "folder_a", "A", 4)
    write_dataset(tmp_path / "sets" / "folder_b", "B", 5)
    (tmp_path / "sets" / "suite.json").write_text("{}")  # files beside the datasets are ignored
    assert set(find_datasets([tmp_path / "sets"])) == {"A", "B"}
    fingerprint = load_dataset(tmp_path / "sets" / "folder_a").fingerprint()
    facts = [DatasetFacts("v1", "A", 4, 24, 8, fingerprint)]
    (baseline,) = pixel_baselines(facts, [tmp_path / "sets"]).values()
    val = split_indices(40).val
    assert baseline.accuracy == 1.0  # flat greys, one per class
    assert baseline.majority == np.bincount(labels[val]).max() / len(val)
    assert (baseline.num_classes, baseline.n_train, baseline.n_val, baseline.resolution) == (4, 24, 8, 8)
    # a folder of the store's resolution is not resized; another resolution is a mismatch
    with pytest.raises(DatasetFolderError, match="resolution 16 in the store but 8 in the folder"):
        pixel_baselines([DatasetFacts("v1", "A", 4, 24, 16)], [tmp_path / "sets"])


def test_mismatched_missing_and_duplicate_folders_are_errors(tmp_path: Path) -> None:
    write_dataset(tmp_path / "sets" / "a", "A", 4)
    with pytest.raises(DatasetFolderError, match=r"does not match the store's runs of v1/A: num_classes 5 in the store "
                       r"but 4 in the folder; train_size 30 in the store but 24"):  # fmt: skip
        pixel_baselines([DatasetFacts("v1", "A", 5, 30, 8)], [tmp_path / "sets"])
    with pytest.raises(DatasetFolderError, match=r"v1/A: dataset_fingerprint 0123456789abcdef in the store but "):
        pixel_baselines([DatasetFacts("v1", "A", 4, 24, 8, "0123456789abcdef")], [tmp_path / "sets"])
    with pytest.raises(DatasetFolderError, match=r"no dataset folder for C in .*found: A"):
        pixel_baselines([DatasetFacts("v1", "C", 4, 24, 8)], [tmp_path / "sets"])
    write_dataset(tmp_path / "more" / "a2", "A", 4)
    with pytest.raises(DatasetFolderError, match="two dataset folders are named 'A'"):
        find_datasets([tmp_path / "sets", tmp_path / "more"])
    with pytest.raises(DatasetFolderError, match="does not exist"):
        find_datasets([tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetFolderError, match="holds no Meta-Album dataset"):
        find_datasets([tmp_path / "empty"])
    assert set(find_datasets([tmp_path / "sets" / "a"])) == {"A"}  # a dataset folder itself


# ---- a store that passes, the CLI and the card ------------------------------------------------------


def build_passing_store(root: Path) -> None:
    """Datasets D0-D2 (4 classes, 24 train images, 8 px), each with a different best model; all pretrained."""
    create_store(root, StoreMetadata(name="good"))
    for d in range(3):
        for m in range(3):
            final = 0.9 if m == d else 0.8
            write_run(root, run(f"d{d}m{m}", f"D{d}", f"m{m}", "hub:x", 4), curve(final - 0.1, final, 6))


def test_cli_exit_codes_and_json(tmp_path: Path, hand_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good"
    build_passing_store(good)
    assert main(["quality", str(good), "--check"]) == 0
    assert "n/a (no dataset folder)" in capsys.readouterr().out
    assert main(["quality", str(hand_store)]) == 0  # a report, not a check
    assert main(["quality", str(hand_store), "--check"]) == 1
    capsys.readouterr()
    assert main(["quality", str(hand_store), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["store"] == "quality test" and data["passed"] is False
    assert data["pixel_baseline"] == NO_FOLDER
    a = data["datasets"][0]
    assert (a["dataset"], a["best"], a["n_low"], a["majority"]) == ("A", pytest.approx(0.9), 3, None)
    assert {c["name"]: c["status"] for c in data["checks"]}["best_vs_pixel"] == "n/a"
    assert {(r["dataset"], r["model"], r["rank"]) for r in data["ranks"]} >= {("B", "m3", 1)}

    # with folders: flat-grey datasets are separable, so raw pixels (1.0) beat every run (0.9)
    for d in range(3):
        write_dataset(tmp_path / "sets" / f"D{d}", f"D{d}", 4)
    assert main(["quality", str(good), "--datasets", str(tmp_path / "sets"), "--check"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  on every dataset the best final accuracy beats the pixel baseline" in out
    assert "v1/D0 (0.900 <= 1.000)" in out

    assert main(["quality", str(hand_store), "--datasets", str(tmp_path / "sets")]) == 2
    assert "no dataset folder for A, B" in capsys.readouterr().err
    assert main(["quality", str(tmp_path / "missing")]) == 2
    create_store(tmp_path / "empty", StoreMetadata(name="empty"))
    assert main(["quality", str(tmp_path / "empty")]) == 2
    assert "holds no runs" in capsys.readouterr().err


def test_card_has_a_quality_section(tmp_path: Path) -> None:
    good = tmp_path / "good"
    build_passing_store(good)
    for d in range(3):
        write_dataset(tmp_path / "sets" / f"D{d}", f"D{d}", 4)
    md = write_card(good, tmp_path / "cards", [tmp_path / "sets"]).read_text()
    section = md[md.index("## Quality\n") : md.index("## Curves per model")]
    assert "Pixel LR: scikit-learn LogisticRegression" in section
    # version | dataset | K | chance | majority | pixel | best | median | low | pretrained | random-init | rho | model
    majority = np.bincount(np.arange(40)[split_indices(40).val] % 4).max() / 8
    row = f"| v1 | D0 | 4 | 0.250 | {majority:.3f} | 1.000 | 0.900 | 0.800 | 0% (0/3) | 0.800 (n=3) | — | 1.00 (n=3) |"
    assert row in section
    assert "| m0 | 3 | 1 | 1.67 | 1 | 2 |" in section  # model | datasets | best on | mean rank | best | worst
    assert "| m0 | 1 | 2 | 2 |" in section  # rank matrix: m0 is 1st on D0, 2nd on D1 and D2 (median ties: by name)
    assert "| on every dataset the best final accuracy beats the pixel baseline | **FAIL** |" in section
    assert "| at least 3 different models are best on some dataset | **PASS** |" in section
    assert "](good/quality.png)" in section and (tmp_path / "cards" / "good" / "quality.png").stat().st_size > 1000

    plain = write_card(good, tmp_path / "plain").read_text()
    assert "Pixel LR: n/a (no dataset folder): write the card with `--datasets DIR`" in plain
    assert "| on every dataset the best final accuracy beats the pixel baseline | n/a |" in plain


def test_store_quality_without_folders_is_the_plain_report(hand_store: Path) -> None:
    runs = runs_of(hand_store)
    assert store_quality(runs).to_dict() == quality_report(runs).to_dict()
