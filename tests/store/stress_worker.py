"""A writer process for the stress test: writes its share of runs, logging each one it finished.

python -m tests.store.stress_worker STORE WORKER N_RUNS LOG
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from metagen.store import write_run
from tests.factories import make_curve, make_run


def expected_run(run_id: str) -> tuple[dict, list[dict]]:
    """The content of a run, a pure function of its id (so the checker can recompute it)."""
    k = sum(map(ord, run_id))
    dataset = f"D{k % 3}"
    return make_run(run_id, dataset=dataset, lr=10.0 ** -(1 + k % 4)), make_curve(1 + k % 6, start=(k % 50) / 100)


def run_ids(worker: int, n: int) -> list[str]:
    """Worker-specific runs plus runs every worker writes (exercises concurrent identical writes)."""
    return [f"w{worker}-{i:04d}" if i % 4 else f"shared-{i:04d}" for i in range(n)]


def main(store: str, worker: int, n: int, log: str) -> None:
    with open(log, "a") as f:
        for rid in run_ids(worker, n):
            write_run(store, *expected_run(rid))
            f.write(rid + "\n")
            f.flush()
            os.fsync(f.fileno())


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), str(Path(sys.argv[4])))
