"""Quick-Tune's surrogates: pipeline encoding, deep-kernel GP performance predictor, cost predictor,
meta-training with dataset-level folds (``surrogates.folds`` and ``surrogates.encoding`` import no torch)."""
