"""benchmark.figures on a tiny RESULTS directory: every file written and non-empty, clear CLI errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from benchmark.figures import make_figures, method_styles, plot_cd_diagram, save
from tests.benchmark.results_factory import write_random_results

REPO = Path(__file__).resolve().parents[2]


def test_make_figures_writes_every_output(tmp_path):
    results = write_random_results(tmp_path / "R", versions=("micro", "mini"), methods=("a", "b", "c"))
    written = make_figures(results, tmp_path / "out", fractions=(0.1, 0.5, 1.0), formats=("png",), dpi=50)
    names = {p.name for p in written}
    expected = {"regret_over_time.png", "rank_over_time.png", "summary.csv", "summary.md", "friedman.csv"}
    expected |= {f"cd_{v}_{p}.png" for v in ("micro", "mini") for p in ("10", "50", "100")}
    assert names == expected
    for p in written:
        assert p.is_file() and p.stat().st_size > 0, p
    summary = pl.read_csv(tmp_path / "out" / "summary.csv")
    assert summary.height == 2 * 3 * 3  # versions x methods x fractions
    friedman = pl.read_csv(tmp_path / "out" / "friedman.csv")
    assert friedman.filter(pl.col("fraction") == 1.0)["n_datasets"].unique().to_list() == [3]


def test_the_same_results_give_the_same_bytes(tmp_path):
    results = write_random_results(tmp_path / "R", versions=("micro",), methods=("a", "b"))
    first = make_figures(results, tmp_path / "one", fractions=(1.0,), formats=("png", "pdf"), dpi=40)
    second = make_figures(results, tmp_path / "two", fractions=(1.0,), formats=("png", "pdf"), dpi=40)
    pdfs = [p for p in first if p.suffix == ".pdf"]
    assert pdfs and all(b"/CreationDate" not in p.read_bytes() for p in pdfs)  # no clock in the bytes
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_styles_are_fixed_per_method():
    s1 = method_styles(["quicktune", "bohb", "random_search"])
    s2 = method_styles(["random_search", "bohb", "quicktune"])
    assert s1 == s2 and len({st.color for st in s1.values()}) == 3
    many = method_styles([f"m{i:02d}" for i in range(10)])
    assert len({(st.color, st.linestyle) for st in many.values()}) == 10


def test_cd_diagram_of_two_methods(tmp_path):
    fig = plot_cd_diagram(np.array([1.2, 1.8]), ["a", "b"], cd=0.9, title="two")
    (path,) = save(fig, tmp_path / "cd", ["pdf"], dpi=50)
    assert path.stat().st_size > 0


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmark.figures", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"},
        timeout=120,
    )


def test_cli_writes_and_prints_its_outputs(tmp_path):
    write_random_results(tmp_path / "R", methods=("a", "b", "c"))
    proc = _cli("results=R", "out=figs", "fractions=[0.5,1.0]", "formats=[png]", "dpi=40", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert str((tmp_path / "figs").resolve()) in proc.stdout
    assert (tmp_path / "figs" / "cd_micro_50.png").stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["R", "figs"]  # Hydra left no outputs/ folder


@pytest.mark.parametrize("make", [False, True])
def test_cli_errors_on_missing_or_empty_results(tmp_path, make):
    if make:
        (tmp_path / "R").mkdir()
    proc = _cli("results=R", "out=figs", cwd=tmp_path)
    assert proc.returncode != 0
    assert ("holds no result files" if make else "does not exist") in proc.stderr
    assert "Traceback" not in proc.stderr
