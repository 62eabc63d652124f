"""``python -m metagen.datasets``: see :mod:`metagen.datasets.cli`."""

from __future__ import annotations

import sys

from metagen.datasets.cli import main

sys.exit(main())
