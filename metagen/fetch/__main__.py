"""``python -m metagen.fetch``: see :mod:`metagen.fetch.cli`."""

from __future__ import annotations

import sys

from metagen.fetch.cli import main

sys.exit(main())
