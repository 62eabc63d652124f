"""Paired comparison of two benchmark runs of the same cells: is variant B's regret equal to A's?

Used to decide whether a cheaper or changed setting (a refit schedule, a surrogate implementation) may replace
another: both runs replay the same (method, dataset, seed) cells; per cell the difference ``B - A`` of the
normalized regret at a fraction of the budget is taken, averaged over seeds per dataset, and the mean over datasets
gets a 95 % Student-t confidence interval (:func:`benchmark.metrics.mean_ci`). Issue 13's rule calls B equal to A
at a fraction when that interval contains 0 and ``|mean| < 0.01``.

Pure functions of loaded RESULTS (:func:`benchmark.results.load_results`); imports neither torch nor matplotlib.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import polars as pl

from benchmark.metrics import mean_ci, regret_cube
from benchmark.results import Results, ResultsError, load_results

EQUAL_WITHIN = 0.01
"""Largest ``|mean difference|`` of regret that counts as equal (with a confidence interval containing 0)."""


def paired_regret(
    a: Results,
    b: Results,
    version: str,
    fractions: Sequence[float] = (0.1, 0.5, 1.0),
    methods: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Regret difference ``B - A`` per method and budget fraction over the cells both runs have.

    Args:
        a, b: the two runs (RESULTS folders, loaded).
        version: the version to compare.
        fractions: budget fractions in ``(0, 1]``.
        methods: methods to compare (default: every method both runs have for ``version``).

    Returns:
        One row per (method, fraction): ``regret_a, regret_b`` (means over datasets of the seed means),
        ``diff_mean, diff_ci95`` (mean over datasets of the per-dataset mean of paired differences, its 95 %
        t half-width), ``n_datasets, n_pairs`` and ``equal`` (interval contains 0 and ``|diff_mean| <``
        :data:`EQUAL_WITHIN`).
    """
    common = sorted(set(a.methods(version)) & set(b.methods(version)))
    methods = list(methods) if methods is not None else common
    missing = sorted(set(methods) - set(common))
    if missing or not methods:
        raise ResultsError(f"methods {missing or methods} are not in both {a.root} and {b.root} ({version})")
    fr = np.asarray(sorted(set(fractions)), dtype=np.float64)
    ca, cb = (regret_cube(r, version, fr, relative=True, methods=methods) for r in (a, b))
    runs = sorted(set(ca.runs) & set(cb.runs))
    ia, ib = ([c.runs.index(k) for k in runs] for c in (ca, cb))
    names = np.array([d for d, _ in runs])
    rows = []
    for mi, method in enumerate(methods):
        ra, rb = ca.regret[mi, ia], cb.regret[mi, ib]  # (pairs, F)
        both = ~np.isnan(ra[:, 0]) & ~np.isnan(rb[:, 0])
        datasets = sorted(set(names[both]))
        stacked = np.stack([rb - ra, ra, rb], axis=1)  # (pairs, 3, F): difference, A, B
        seed_means = np.array([stacked[both & (names == d)].mean(axis=0) for d in datasets]).reshape(-1, 3, fr.size)
        per_dataset, mean_a, mean_b = seed_means[:, 0], seed_means[:, 1], seed_means[:, 2]  # (datasets, F) each
        diff, half = mean_ci(per_dataset) if datasets else (np.full(fr.size, np.nan), np.full(fr.size, np.nan))
        for fi, f in enumerate(fr):
            d, h = float(diff[fi]), float(half[fi])
            rows.append(
                {
                    "method": method,
                    "fraction": float(f),
                    "regret_a": float(mean_a[:, fi].mean()) if datasets else float("nan"),
                    "regret_b": float(mean_b[:, fi].mean()) if datasets else float("nan"),
                    "diff_mean": d,
                    "diff_ci95": h,
                    "n_datasets": len(datasets),
                    "n_pairs": int(both.sum()),
                    "equal": bool(np.isfinite(h) and abs(d) <= h and abs(d) < EQUAL_WITHIN),
                }
            )
    return pl.DataFrame(rows)


def paired_markdown(table: pl.DataFrame, label_a: str = "A", label_b: str = "B") -> str:
    """The comparison as a markdown table: one row per (method, fraction)."""
    lines = [
        f"| method | budget | regret {label_a} | regret {label_b} | {label_b} - {label_a} [95 % CI] | datasets | pairs "
        "| equal? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table.iter_rows(named=True):
        ci = f"{r['diff_mean']:+.3f} [{r['diff_mean'] - r['diff_ci95']:+.3f}, {r['diff_mean'] + r['diff_ci95']:+.3f}]"
        lines.append(
            f"| {r['method']} | {100 * r['fraction']:g} % | {r['regret_a']:.3f} | {r['regret_b']:.3f} | {ci} | "
            f"{r['n_datasets']} | {r['n_pairs']} | {'yes' if r['equal'] else 'no'} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="RESULTS folder of variant A (e.g. the reference)")
    parser.add_argument("b", help="RESULTS folder of variant B (the candidate)")
    parser.add_argument("--version", required=True)
    parser.add_argument("--methods", default="", help="comma-separated (default: every method both runs have)")
    parser.add_argument("--label-a", default="A")
    parser.add_argument("--label-b", default="B")
    args = parser.parse_args(argv)
    table = paired_regret(
        load_results(args.a),
        load_results(args.b),
        args.version,
        methods=[m for m in args.methods.split(",") if m] or None,
    )
    print(paired_markdown(table, args.label_a, args.label_b))
    print(
        f"\nequal = the 95 % t-interval of the mean paired difference over datasets (seeds averaged per dataset) "
        f"contains 0 and |mean| < {EQUAL_WITHIN}"
    )


if __name__ == "__main__":
    main()
