"""Compares two methods of (possibly separate) RESULTS directories at budget fractions; prints markdown.

Run with the project's venv:
    .venv/bin/python -m benchmarks.peers.compare --results OURS PEER --a bohb --b bohb-hpbandster --version micro

For each fraction of the budget: mean ± std normalized regret over the (dataset, seed) runs both methods have,
a Wilcoxon signed-rank test on the per-dataset means (paired by dataset, seeds averaged) and a Mann-Whitney U test
on all runs (unpaired: the two implementations draw different random numbers for the same seed).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from scipy.stats import mannwhitneyu, wilcoxon

from benchmark.metrics import regret_cube
from benchmark.results import load_results, merge_results


def compare(dirs: list[str], a: str, b: str, version: str, fractions: list[float]) -> str:
    """Markdown table comparing methods ``a`` and ``b`` of ``version``."""
    parts = [load_results(d) for d in dirs]
    results = parts[0] if len(parts) == 1 else merge_results(parts)
    cube = regret_cube(results, version, np.asarray(fractions), relative=True, methods=[a, b])
    both = cube.complete()
    runs = [r for r, ok in zip(cube.runs, both, strict=True) if ok]
    reg = cube.regret[:, both]  # (2, r, F)
    datasets = sorted({d for d, _ in runs})
    names = np.array([d for d, _ in runs])
    per_dataset = np.stack([reg[:, names == d].mean(axis=1) for d in datasets], axis=1)  # (2, D, F)
    lines = [
        f"Version `{version}`: {len(datasets)} datasets x {len(runs) // max(len(datasets), 1)} seeds "
        f"({len(runs)} runs both methods have); budget {results.budget_s(version):.0f} s simulated.",
        "",
        f"| budget | `{a}` regret | `{b}` regret | mean diff ({a} - {b}) "
        "| Wilcoxon p (datasets) | Mann-Whitney p (runs) |",
        "|---|---|---|---|---|---|",
    ]
    for fi, f in enumerate(fractions):
        x, y = reg[0, :, fi], reg[1, :, fi]
        xd, yd = per_dataset[0, :, fi], per_dataset[1, :, fi]
        w = wilcoxon(xd, yd).pvalue if len(datasets) >= 2 and np.any(xd != yd) else float("nan")
        u = mannwhitneyu(x, y).pvalue if len(x) >= 2 else float("nan")
        lines.append(
            f"| {100 * f:g} % | {x.mean():.3f} ± {x.std():.3f} | {y.mean():.3f} ± {y.std():.3f} | "
            f"{x.mean() - y.mean():+.3f} | {w:.3g} | {u:.3g} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", nargs="+", required=True, help="RESULTS directories (merged)")
    p.add_argument("--a", required=True, help="first method (e.g. ours: bohb)")
    p.add_argument("--b", required=True, help="second method (e.g. the peer: bohb-hpbandster)")
    p.add_argument("--version", required=True)
    p.add_argument("--fractions", nargs="+", type=float, default=[0.1, 0.5, 1.0])
    args = p.parse_args(argv)
    print(compare(args.results, args.a, args.b, args.version, args.fractions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
