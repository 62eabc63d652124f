"""Live tuning of a new dataset: a benchmark optimizer (Quick-Tune, DyHPO, ASHA, random search, ...) asks,
the finetuning runner trains (freeze-thaw from checkpoints), every trained epoch lands in a store.

``python -m metagen.tune dataset=PATH store=STORE meta_store=STORE budget=2h`` (see docs/tune.md).
"""

from metagen.tune.config import Budget, TuneConfig, TuneConfigError, parse_args, parse_budget

__all__ = ["Budget", "TuneConfig", "TuneConfigError", "parse_args", "parse_budget"]
