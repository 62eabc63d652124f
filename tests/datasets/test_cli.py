"""``python -m metagen.datasets`` (list, make, info, suite)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from metagen.datasets.cli import main
from metagen.datasets.suite import DEFAULT_SUITE


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for kind in ("fashion_mnist", "digits", "textures", "characters", "shapes"):
        assert kind in out
    assert "available" in out


def test_list_reports_missing_source(capsys: pytest.CaptureFixture[str], monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("METAGEN_FASHION_MNIST_DIR", str(tmp_path))
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "NOT AVAILABLE" in out and "apt-get install dataset-fashion-mnist" in out


def test_make_then_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "shp"
    argv = ["make", "shapes", str(out), "--classes", "3", "--per-class", "5", "--resolution", "16", "--seed", "2"]
    assert main(argv) == 0
    assert "wrote 3 x 5 shapes images" in capsys.readouterr().out
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "train_size=9 num_classes=3 resolution=16 channels=3" in text
    assert "train 9, val 3, test 3" in text
    assert main(["info", str(out), "--json", "--verify"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["meta_features"] == {"train_size": 9, "num_classes": 3, "resolution": 16, "channels": 3}
    assert report["split"] == {"train": 9, "val": 3, "test": 3}
    # refuses to overwrite, then --force works
    assert main(argv) == 2
    assert "--force" in capsys.readouterr().err
    assert main([*argv, "--force", "--name", "RENAMED"]) == 0
    assert json.loads((out / "info.json").read_text())["dataset_name"] == "RENAMED"


@pytest.mark.parametrize(
    "argv",
    [
        ["make", "nope", "x"],
        ["make", "shapes", "x", "--classes", "0"],
        ["make", "shapes", "x", "--per-class", "many"],
        ["make", "shapes", "x", "--seed", "-3"],
        ["make", "shapes"],
        ["frobnicate"],
        [],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err


def test_dataset_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["make", "shapes", str(tmp_path / "x"), "--classes", "40"]) == 2
    assert "2 to 23 classes" in capsys.readouterr().err


def test_suite_command(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    small = (DEFAULT_SUITE[0]._replace(kind="shapes", per_class=5, resolution=16),)
    monkeypatch.setattr("metagen.datasets.suite.DEFAULT_SUITE", small)
    monkeypatch.setattr("metagen.datasets.suite.make_suite.__defaults__", (small, 0))
    assert main(["suite", str(tmp_path / "s"), "--seed", "4"]) == 0
    assert "wrote 1 datasets" in capsys.readouterr().out
    assert (tmp_path / "s" / "suite.json").is_file()


def test_module_entry_point_without_torch(tmp_path: Path) -> None:
    root = Path(__file__).parents[2]
    out = tmp_path / "ds"
    argv = ["make", "shapes", str(out), "--classes", "2", "--per-class", "5", "--resolution", "16"]
    res = subprocess.run([sys.executable, "-m", "metagen.datasets", *argv], capture_output=True, text=True,
                         timeout=120, cwd=root)  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = subprocess.run([sys.executable, "-m", "metagen.datasets", *argv], capture_output=True, text=True,
                         timeout=120, cwd=root)  # fmt: skip
    assert res.returncode == 2 and "not empty" in res.stderr
    code = (
        "import sys, metagen.datasets as d\n"
        "d.make_dataset('characters', sys.argv[2], n_classes=2, per_class=5, resolution=16, seed=0)\n"
        "d.load_dataset(sys.argv[1]).meta_features()\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'timm')]\n"
        "assert not bad, bad"
    )
    res = subprocess.run([sys.executable, "-c", code, str(out), str(tmp_path / "chars")], capture_output=True,
                         text=True, timeout=120, cwd=root)  # fmt: skip
    assert res.returncode == 0, res.stderr
