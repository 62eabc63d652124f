"""Every command line exits 0 done / 1 problems found or failures / 2 bad input (``metagen.exit_codes``), and
``--help`` lists what a user can choose, without importing torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from metagen.exit_codes import BAD_INPUT, OK, PROBLEMS
from tests.factories import make_curve, make_run, read_only

ROOT = Path(__file__).resolve().parents[1]

RUN_MODULE = """
import json, runpy, sys
sys.argv = [sys.argv[1], *sys.argv[2:]]
code = 0
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
heavy = sorted(m for m in ("torch", "timm") if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


def run_module(module: str, *args: str, cwd: Path) -> tuple[int, list[str], str, str]:
    """(exit code, heavy modules imported, stdout, stderr) of ``python -m module args`` in a fresh process."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", RUN_MODULE, module, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    *err, last = proc.stderr.rstrip().splitlines()
    result = json.loads(last)
    return result["code"], result["heavy"], proc.stdout, "\n".join(err)


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("metagen.finetune", ["nosuch=1"]),
        ("metagen.finetune", ["epochs=many"]),
        ("metagen.finetune", ["store=/x"]),  # dataset= missing
        ("metagen.sweep", ["nosuch=1"]),
        ("benchmark.run", ["nosuch=1"]),
        ("benchmark.run", ["out=/x"]),  # store= missing
        ("benchmark.figures", ["results=/no/such/results", "out=/tmp/unused"]),
        ("benchmark.paper", ["nosuch=1"]),
        ("benchmark.paper", ["store=/no/such/store", "out=/tmp/unused-paper"]),
        ("surrogates.evaluate", ["nosuch=1"]),
        ("metagen.fetch", ["quicktune/nosuch", "data"]),
        ("metagen.fetch", ["meta-album/micro/set9", "data"]),
    ],
)
def test_bad_input_exits_2_without_importing_torch(module: str, args: list[str], tmp_path: Path) -> None:
    code, heavy, _, err = run_module(module, *args, cwd=tmp_path)
    assert code == BAD_INPUT, err
    assert "Traceback" not in err and err.strip()
    if module != "surrogates.evaluate":  # the surrogates package is torch itself
        assert heavy == [], f"{module} imported {heavy} before rejecting its input"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("metagen.finetune", ["hp.lr", "hp.opt_betas", "only when opt in", "dla46x_c", "version", "shapes",
                              "keep_checkpoint=false", "Exit codes"]),
        ("metagen.sweep", ["pipelines_per_dataset=10", "hub.models", "cluster.partition", "cluster.processes",
                           "dla46x_c", "shapes", "cpu10", "Exit codes"]),
        ("benchmark.run", ["methods=[random_search,hyperband,asha,bohb]", "quicktune-M", "dyhpo", "default_model",
                           "slurm.partition", "Exit codes"]),
        ("metagen.fetch", ["quicktune/VERSION", "meta-album/VERSION[/SET]", "openml/ID", "import-quicktune",
                           "Exit codes"]),
        ("benchmark.paper", ["experiments", "fig5", "max_datasets", "overhead=measured", "cluster=local",
                             "slurm.partition", "Exit codes"]),
    ],
)  # fmt: skip
def test_help_lists_the_choices_without_importing_torch(module: str, expected: list[str], tmp_path: Path) -> None:
    code, heavy, out, err = run_module(module, "--help", cwd=tmp_path)
    assert code == OK and heavy == [], err
    missing = [e for e in expected if e not in out]
    assert not missing, f"{module} --help lacks {missing}:\n{out}"


def test_store_cli_exit_codes(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from metagen.store import write_run
    from metagen.store.cli import main
    from metagen.store.layout import loose_path

    assert main(["compact", str(store)]) == OK
    write_run(store, make_run(), make_curve())
    loose_path(store, "micro", "PNU", "r1").write_bytes(b"broken")
    capsys.readouterr()
    assert main(["compact", str(store)]) == PROBLEMS  # reported and left in place
    assert "r1.parquet" in capsys.readouterr().out
    assert main(["validate", str(store)]) == PROBLEMS
    assert main(["info", str(tmp_path / "missing")]) == BAD_INPUT
    assert main(["compact", str(tmp_path / "missing")]) == BAD_INPUT
    assert "not a learning-curve store" in capsys.readouterr().err
    loose_path(store, "micro", "PNU", "r1").unlink()
    write_run(store, make_run("r2"), make_curve())
    assert main(["compact", str(store)]) == OK
    from metagen.store.layout import compacted_parts

    compacted_parts(store)[0][0].write_bytes(b"not parquet")  # a damaged part stops compact: problems found
    capsys.readouterr()
    assert main(["compact", str(store)]) == PROBLEMS
    assert "damaged part" in capsys.readouterr().out
    compacted_parts(store)[0][0].unlink()
    with read_only(store):
        assert main(["compact", str(store)]) == BAD_INPUT
    err = capsys.readouterr().err
    assert "not writable" in err and "Traceback" not in err


def test_sweep_status_on_a_missing_store_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from metagen.sweep.status import main

    assert main([str(tmp_path / "no-store")]) == BAD_INPUT
    assert "not a learning-curve store" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == BAD_INPUT


def test_sweep_status_on_an_empty_store_exits_0(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from metagen.sweep.status import main

    assert main([str(store)]) == OK
    assert "total" in capsys.readouterr().out
