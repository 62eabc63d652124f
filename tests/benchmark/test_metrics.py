"""Regret, grid mapping, ranks, intervals and summary tables of benchmark.metrics on hand-made trajectories."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from benchmark.metrics import (
    incumbent_trajectory,
    mean_ci,
    normalized_regret,
    ranks,
    regret_cube,
    step_on_grid,
    summary_markdown,
    summary_table,
    time_grid,
)
from benchmark.results import ResultsError, load_results, merge_results
from tests.benchmark.results_factory import write_random_results, write_run


def test_normalized_regret_by_hand():
    inc = np.array([np.nan, 0.5, 0.8, 0.9])
    np.testing.assert_allclose(normalized_regret(inc, best=0.9, worst=0.4), [1.0, 0.8, 0.2, 0.0])
    assert normalized_regret(0.65, 0.9, 0.4) == pytest.approx(0.5)


def test_normalized_regret_clips_and_handles_a_constant_table():
    np.testing.assert_allclose(normalized_regret([0.95, 0.3], best=0.9, worst=0.4), np.array([0.0, 1.0]))
    np.testing.assert_allclose(normalized_regret([np.nan, 0.7], best=0.7, worst=0.7), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="best >= worst"):
        normalized_regret(0.5, best=0.4, worst=0.9)


def test_incumbent_trajectory_ignores_diverged_epochs():
    out = incumbent_trajectory(np.array([np.nan, 0.3, np.nan, 0.2, 0.6]))
    np.testing.assert_allclose(out, [np.nan, 0.3, 0.3, 0.3, 0.6])


def test_step_on_grid_semantics():
    times = np.array([2.0, 5.0, 5.0, 9.0])
    regret = np.array([0.8, 0.6, 0.5, 0.1])
    grid = np.array([0.0, 1.99, 2.0, 4.0, 5.0, 8.9, 9.0, 100.0])
    # before the first event: 1; an event counts from its own time on; of two events at one time, the last wins
    np.testing.assert_allclose(step_on_grid(times, regret, grid), [1, 1, 0.8, 0.8, 0.5, 0.5, 0.1, 0.1])
    assert np.isnan(step_on_grid(times, regret, grid, before=np.nan)[0])
    np.testing.assert_allclose(step_on_grid(np.array([]), np.array([]), grid), np.ones(len(grid)))
    with pytest.raises(ValueError, match="non-decreasing"):
        step_on_grid(np.array([3.0, 1.0]), np.array([0.5, 0.4]), grid)


def test_time_grids():
    g = time_grid(3600.0, "log", n=50)
    assert g[0] == pytest.approx(3.6) and g[-1] == pytest.approx(3600.0) and len(g) == 50
    np.testing.assert_allclose(np.diff(np.log(g)), np.log(1000) / 49)
    np.testing.assert_array_equal(time_grid(5.5, "second"), [0, 1, 2, 3, 4, 5])
    assert time_grid(10.0, "linear", n=3).tolist() == [0.0, 5.0, 10.0]
    with pytest.raises(ValueError, match="unknown grid kind"):
        time_grid(10.0, "cubic")
    with pytest.raises(ValueError, match="positive budget"):
        time_grid(0.0)


def test_ranks_average_ties():
    regret = np.array([[[0.1, 0.5]], [[0.1, 0.2]], [[0.3, 0.2]]])  # (m=3, r=1, T=2)
    out = ranks(regret)
    np.testing.assert_allclose(out[:, 0, 0], [1.5, 1.5, 3.0])
    np.testing.assert_allclose(out[:, 0, 1], [3.0, 1.5, 1.5])
    with pytest.raises(ValueError, match="incomplete"):
        ranks(np.array([[[np.nan]], [[0.1]]]))


def test_mean_ci_by_hand():
    x = np.array([[1.0, 0.0], [3.0, np.nan]])  # two runs, two time steps
    mean, half = mean_ci(x, axis=0)
    np.testing.assert_allclose(mean, [2.0, 0.0])
    np.testing.assert_allclose(half, [1.96 * 1.0 / np.sqrt(2), 0.0])  # std (ddof=0) of [1, 3] is 1
    m, h = mean_ci(np.full((2, 1), np.nan), axis=0)
    assert np.isnan(m[0]) and np.isnan(h[0])


def test_load_results_errors(tmp_path):
    with pytest.raises(ResultsError, match="does not exist"):
        load_results(tmp_path / "nope")
    with pytest.raises(ResultsError, match="holds no result files"):
        load_results(tmp_path)
    bad = tmp_path / "version=v/method=m/dataset=d/seed=0.parquet"
    bad.parent.mkdir(parents=True)
    pl.DataFrame({"time": [1.0]}).write_parquet(bad)
    with pytest.raises(ResultsError, match="missing columns"):
        load_results(tmp_path)
    bad.write_bytes(b"not parquet")
    with pytest.raises(ResultsError, match="not readable"):
        load_results(tmp_path)


def test_load_results_rejects_rows_that_disagree_with_their_path(tmp_path):
    path = write_run(tmp_path, "v", "m", "d", 0, [1.0], [0.5])
    path.rename(path.with_name("seed=1.parquet"))
    with pytest.raises(ResultsError, match="disagree"):
        load_results(tmp_path)


def test_regret_cube_on_hand_made_runs(tmp_path):
    write_run(tmp_path, "v", "a", "d0", 0, [10.0, 40.0], [0.5, 0.2])
    write_run(tmp_path, "v", "b", "d0", 0, [20.0], [0.3])
    write_run(tmp_path, "v", "a", "d0", 1, [], [])  # a file without events: regret 1 throughout
    res = load_results(tmp_path)
    cube = regret_cube(res, "v", np.array([5.0, 10.0, 30.0, 100.0]))
    assert cube.methods == ("a", "b") and cube.runs == (("d0", 0), ("d0", 1))
    np.testing.assert_allclose(cube.regret[0, 0], [1.0, 0.5, 0.5, 0.2])
    np.testing.assert_allclose(cube.regret[1, 0], [1.0, 1.0, 0.3, 0.3])
    np.testing.assert_allclose(cube.regret[0, 1], [1.0] * 4)
    assert np.isnan(cube.regret[1, 1]).all()  # method b has no seed-1 run
    assert cube.complete().tolist() == [True, False]
    rel = regret_cube(res, "v", np.array([0.1, 0.5, 1.0]), relative=True)  # budget 100 s
    np.testing.assert_allclose(rel.regret[0, 0], [0.5, 0.2, 0.2])
    with pytest.raises(ResultsError, match="no results of version"):
        regret_cube(res, "other", np.array([1.0]))


def test_summary_table_by_hand(tmp_path):
    # dataset d0: seeds 0 and 1; dataset d1: seed 0. At 50 % of 100 s:
    write_run(tmp_path, "micro", "a", "d0", 0, [10.0], [0.2])
    write_run(tmp_path, "micro", "a", "d0", 1, [10.0], [0.4])
    write_run(tmp_path, "micro", "a", "d1", 0, [10.0], [0.1])
    write_run(tmp_path, "micro", "b", "d0", 0, [10.0], [0.3])
    write_run(tmp_path, "micro", "b", "d0", 1, [10.0], [0.4])
    write_run(tmp_path, "micro", "b", "d1", 0, [60.0], [0.0])
    table = summary_table(load_results(tmp_path), fractions=[0.5, 1.0])
    a = table.filter((pl.col("method") == "a") & (pl.col("fraction") == 0.5)).row(0, named=True)
    b = table.filter((pl.col("method") == "b") & (pl.col("fraction") == 0.5)).row(0, named=True)
    # a: dataset means 0.3 (d0) and 0.1 (d1) -> mean 0.2, std 0.1
    assert a["regret_mean"] == pytest.approx(0.2) and a["regret_std"] == pytest.approx(0.1)
    assert a["regret_ci95"] == pytest.approx(1.96 * 0.1 / np.sqrt(2))
    # b: d0 mean 0.35, d1 regret 1 (nothing before 50 s) -> mean 0.675
    assert b["regret_mean"] == pytest.approx(0.675)
    # ranks per run: d0s0 a=1, d0s1 tie 1.5, d1s0 a=1 -> a: d0 1.25, d1 1 -> 1.125
    assert a["rank_mean"] == pytest.approx(1.125) and b["rank_mean"] == pytest.approx(1.875)
    assert a["n_runs"] == 3 and a["n_datasets"] == 2 and a["time_s"] == pytest.approx(50.0)
    b_end = table.filter((pl.col("method") == "b") & (pl.col("fraction") == 1.0)).row(0, named=True)
    assert b_end["regret_mean"] == pytest.approx(0.175)
    md = summary_markdown(table)
    assert "### 50 % of the budget" in md and "| a | **0.200 ± 0.100 [±0.139]** |" in md
    with pytest.raises(ValueError, match="fractions"):
        summary_table(load_results(tmp_path), fractions=[0.0])


def test_summary_markdown_lists_every_version_and_method(tmp_path):
    write_random_results(tmp_path, versions=("mini", "micro"), methods=("x", "y"))
    md = summary_markdown(summary_table(load_results(tmp_path)))
    header = next(line for line in md.splitlines() if line.startswith("| method"))
    assert header == "| method | regret micro | regret mini | rank micro | rank mini |"
    assert md.count("| x |") == 3 and md.count("| y |") == 3


def test_merge_results(tmp_path):
    write_run(tmp_path / "ours", "v", "a", "d0", 0, [1.0], [0.5])
    write_run(tmp_path / "peer", "v", "b", "d0", 0, [2.0], [0.4])
    merged = merge_results([load_results(tmp_path / "ours"), load_results(tmp_path / "peer")])
    assert merged.methods("v") == ["a", "b"] and merged.events.height == 2
    write_run(tmp_path / "peer", "v", "a", "d0", 0, [1.0], [0.5])
    with pytest.raises(ResultsError, match="more than one"):
        merge_results([load_results(tmp_path / "ours"), load_results(tmp_path / "peer")])


def test_events_of_one_ask_share_a_step_and_stay_in_time_order(tmp_path):
    path = write_run(tmp_path, "v", "a", "d0", 0, [10.0, 20.0, 30.0], [0.6, 0.4, 0.3])
    frame = pl.read_parquet(path).with_columns(pl.Series("step", [0, 0, 0], dtype=pl.Int64))
    frame.reverse().write_parquet(path)  # rows out of order in the file, one ask for all three epochs
    res = load_results(tmp_path)
    assert res.events["time"].to_list() == [10.0, 20.0, 30.0]
    np.testing.assert_allclose(regret_cube(res, "v", np.array([15.0, 25.0, 35.0])).regret[0, 0], [0.6, 0.4, 0.3])
