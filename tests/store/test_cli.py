"""The store's command line, as users and checks call it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from metagen.store.cli import main
from metagen.store.layout import loose_path, read_metadata
from tests.factories import make_curve, make_run


def test_synth_info_validate_compact_card(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "syn"
    assert main(["synth", str(store), "--profile", "tiny", "--seed", "2"]) == 0
    capsys.readouterr()
    assert main(["info", str(store), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"schema_version", "n_datasets", "n_runs", "n_epochs", "synthetic"} <= set(info)
    assert (info["n_datasets"], info["n_runs"], info["n_epochs"], info["synthetic"]) == (5, 56, 1800, True)
    assert main(["info", str(store)]) == 0 and "SYNTHETIC" in capsys.readouterr().out
    assert main(["validate", str(store)]) == 0
    assert main(["compact", str(store)]) == 0
    assert main(["card", str(store), "--out", str(tmp_path / "cards")]) == 0
    assert (tmp_path / "cards" / "synthetic-tiny-seed2.md").exists()


def test_validate_exit_code_and_errors(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from metagen.store import write_run

    write_run(store, make_run(), make_curve())
    loose_path(store, "micro", "PNU", "r1").write_bytes(b"broken")
    assert main(["validate", str(store)]) == 1
    assert "r1.parquet" in capsys.readouterr().out
    assert main(["info", str(store.parent / "missing")]) == 2
    assert "not a learning-curve store" in capsys.readouterr().err


def test_module_entry_point_and_no_torch(tmp_path: Path) -> None:
    code = (
        "import sys, metagen.store, metagen.store.cli, metagen.store.reader, metagen.store.synth, "
        "metagen.store.inspect, metagen.store.card, metagen.store.quality, metagen.store.pixel_baseline, "
        "metagen.search_space; "
        "sys.exit(1 if {'torch', 'timm', 'torchvision'} & set(sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0, "the store must not import torch/timm"
    out = subprocess.run([sys.executable, "-m", "metagen.store", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "import-quicktune" in out.stdout


def test_create_makes_an_empty_measured_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "measured"
    assert main(["create", str(store), "--name", "mine"]) == 0
    assert main(["create", str(store)]) == 0  # idempotent
    capsys.readouterr()
    assert main(["info", str(store), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["n_runs"], info["synthetic"]) == (0, False)
    assert main(["create", str(store), "--description", "other"]) == 0  # create keeps an existing description
    assert read_metadata(store).description == "" and read_metadata(store).name == "mine"
    assert main(["describe", str(store), "--description", "the runs of X"]) == 0
    assert read_metadata(store).description == "the runs of X" and read_metadata(store).name == "mine"
    assert main(["describe", str(tmp_path / "nowhere"), "--description", "x"]) == 2
