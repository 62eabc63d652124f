"""Shapes and seeded initialisation of the kernel and cost networks."""

from __future__ import annotations

import numpy as np
import torch

from surrogates.cost import CostPredictor
from surrogates.data import make_batch
from surrogates.nets import DyHPOExtractor, QuickTuneExtractor, init_parameters


def _batch(n: int = 6, d: int = 10, epochs: int = 12):
    rng = np.random.default_rng(0)
    return make_batch(rng.random((n, d)), rng.integers(1, epochs + 1, n), rng.random((n, epochs)), epochs,
                      rng.random(4), y=rng.random(n), cost=rng.random(n) + 0.1)  # fmt: skip


def test_batch_keeps_only_the_curve_prefix_before_the_budget():
    curves = np.arange(1.0, 13.0)[None, :].repeat(2, axis=0)
    curves[1, 1] = np.nan
    b = make_batch(np.zeros((2, 3)), np.array([1, 4]), curves, 12, np.zeros(4))
    assert b.curve.shape == (2, 12) and b.budget.shape == (2, 1) and b.meta.shape == (2, 4)
    assert b.curve[0].abs().sum() == 0
    np.testing.assert_array_equal(b.curve[1, :4].numpy(), [1.0, 0.0, 3.0, 0.0])  # y_1..y_3, nan -> 0
    np.testing.assert_allclose(b.budget[:, 0].numpy(), [1 / 12, 4 / 12])


def test_quicktune_extractor_shapes():
    net = QuickTuneExtractor(n_model=3, dim=10, max_epochs=12, hidden=8, out_dim=5)
    assert net(_batch()).shape == (6, 5)
    assert net.model_encoder[0].in_features == 3 and net.hp_encoder[0].in_features == 7
    no_meta = QuickTuneExtractor(3, 10, 12, hidden=8, out_dim=5, use_meta=False)
    assert no_meta(_batch()).shape == (6, 5)


def test_dyhpo_extractor_shapes():
    net = DyHPOExtractor(dim=10)
    assert net.fc1.in_features == 11 and net.fc2.in_features == 68
    assert net(_batch()).shape == (6, 128)


def test_cost_predictor_is_positive_and_shaped():
    cost = CostPredictor(dim=10, max_epochs=12, log_mean=1.0, log_std=2.0)
    init_parameters(cost, torch.Generator().manual_seed(0))
    pred = cost.predict(_batch())
    assert pred.shape == (6,) and (pred > 0).all()
    assert float(cost.loss(_batch()).detach()) >= 0


def test_initialisation_depends_only_on_the_generator():
    a, b = QuickTuneExtractor(3, 10, 12), QuickTuneExtractor(3, 10, 12)
    torch.manual_seed(123)  # the global RNG must not matter
    init_parameters(a, torch.Generator().manual_seed(5))
    torch.manual_seed(999)
    init_parameters(b, torch.Generator().manual_seed(5))
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    a.train()
    batch = _batch()
    for m in (a, b):
        init_parameters(m, torch.Generator().manual_seed(7))  # same dropout stream
    assert torch.equal(a(batch), b.train()(batch))
