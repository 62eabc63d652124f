"""``python -m metagen.sweep``: plan a learning-curve sweep from the store and launch it (Hydra app).

Examples::

    python -m metagen.sweep store=out/store 'datasets=[data/micro]' pipelines_per_dataset=20
    python -m metagen.sweep cluster=slurm cluster.partition=gpu store=... 'datasets=[...]'
    python -m metagen.sweep ... dry_run=true          # check and plan, submit nothing

Every key is documented in conf/sweep.yaml, conf/cluster/*.yaml and metagen/sweep/config.py.
"""

from __future__ import annotations

import sys

from metagen.sweep.cli import main

if __name__ == "__main__":
    sys.exit(main())
