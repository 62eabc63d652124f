"""Every experiment of the Quick-Tune paper from one command: ``python -m benchmark.paper store=STORE out=DIR``.

:mod:`~benchmark.paper.experiments` lists the methods of each figure and table, :mod:`~benchmark.paper.build`
plans and runs their cells through :func:`benchmark.runner.run_benchmark`, :mod:`~benchmark.paper.outputs`
writes every figure and table (one module each) and ``index.md``.
"""
