"""Batches: the numpy sampler gives the draws and values of the torch batch path."""

from __future__ import annotations

import numpy as np
import torch

from surrogates.data import Batch, EncodedTask
from surrogates.encoding import MetaFeatureScaler, PipelineEncoder
from tests.surrogates.tiny import make_task


def test_sampled_arrays_equal_the_batch_of_the_same_draws():
    task = make_task("T", n=30, epochs=8, seed=2)
    task.values[3, 5:] = np.nan  # a diverged run: its budgets stay within its finite epochs
    et = EncodedTask(task, PipelineEncoder.fit(task.features, task.feature_names), MetaFeatureScaler(), 10)
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    arrays = et.sample_arrays(a, 64)
    runs = b.choice(et.usable, size=64, replace=True)
    budgets = 1 + (b.random(64) * et.n_valid[runs]).astype(np.int64)
    expected = et.batch(runs, budgets)
    got = Batch.from_arrays(arrays)
    for field in ("x", "budget", "curve", "meta", "y", "cost"):
        torch.testing.assert_close(getattr(got, field), getattr(expected, field), rtol=0, atol=0, equal_nan=True)
        assert getattr(got, field).dtype == torch.float32
    assert a.random() == b.random()  # the same number of draws
    np.testing.assert_array_equal(Batch.from_arrays(arrays).arrays().curve, arrays.curve)
