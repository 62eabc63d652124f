"""run.json records the numerical environment, and a folder replayed in two environments says so."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from benchmark.environment import numerics_environment
from benchmark.results import merge_run_record


def test_the_environment_names_package_versions_the_cpu_and_its_vector_features(tmp_path: Path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Example CPU 9000\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f\n")
    env = numerics_environment(cpuinfo)
    assert env["cpu"] == "Example CPU 9000" and env["cpu_simd"] == "sse4_2 avx avx2 fma avx512f"
    assert env["numpy"][0].isdigit() and env["torch"][0].isdigit() and env["llvm_host_cpu"]
    assert numerics_environment(tmp_path / "missing")["cpu_simd"] == ""  # no /proc/cpuinfo: no flags, no error


def test_adding_cells_in_another_environment_warns_and_keeps_the_earlier_one(tmp_path: Path):
    base = {"store_hash": "h", "version": "v", "budget_s": 1.0, "overhead": "none", "workers": 1}
    first = {**base, "environment": {"numpy": "2.0", "cpu": "A"}}
    merge_run_record(tmp_path, first)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same environment: silent
        merge_run_record(tmp_path, first)
    with pytest.warns(UserWarning, match="another numerical environment \\(cpu A -> B\\)"):
        merge_run_record(tmp_path, {**base, "environment": {"numpy": "2.0", "cpu": "B"}})
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["environment"]["cpu"] == "B" and record["earlier_environments"] == [{"numpy": "2.0", "cpu": "A"}]


def test_a_folder_from_before_environments_were_recorded_keeps_that_unknown(tmp_path: Path):
    base = {"store_hash": "h", "version": "v", "budget_s": 1.0, "overhead": "none", "workers": 1}
    merge_run_record(tmp_path, base)  # an old run.json: no environment
    merge_run_record(tmp_path, {**base, "environment": {"cpu": "B"}})
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["environment"] == {"cpu": "B"} and list(record["earlier_environments"][0]) == ["unknown"]
