"""``python -m metagen.store``: see :mod:`metagen.store.cli`."""

import sys

from metagen.store.cli import main

sys.exit(main())
