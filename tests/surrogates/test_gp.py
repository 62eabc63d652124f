"""The deep-kernel GP learns a known function and its uncertainty behaves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from linear_operator.utils.errors import NotPSDError

from surrogates.data import Batch, EncodedTask
from surrogates.encoding import MetaFeatureScaler, PipelineEncoder
from surrogates.gp import make_deep_kernel_gp
from surrogates.nets import DyHPOExtractor, QuickTuneExtractor
from tests.surrogates.tiny import make_task


def _data():
    task = make_task("T", n=120, epochs=10, seed=3)
    enc = PipelineEncoder.fit(task.features, task.feature_names)
    et = EncodedTask(task, enc, MetaFeatureScaler(), 10)
    rng = np.random.default_rng(0)
    return enc, et.sample(rng, 150), et.sample(rng, 100)


def _mse(a: np.ndarray, b: torch.Tensor) -> float:
    return float(np.mean((a - b.numpy()) ** 2))


def test_fit_recovers_a_known_function_better_than_a_constant():
    torch.set_num_threads(1)
    enc, train, test = _data()
    for factory in (lambda: DyHPOExtractor(enc.dim), lambda: QuickTuneExtractor(enc.n_model, enc.dim, 10, dropout=0)):
        model = make_deep_kernel_gp(factory, torch.Generator().manual_seed(0))
        model.fit(train, epochs=150, lr=1e-2)
        mean, std = model.predict(train, test)
        constant = _mse(np.full(len(test), float(train.y.mean())), test.y)
        assert _mse(mean, test.y) < 0.25 * constant
        assert (std > 0).all()


def test_fit_is_deterministic_and_skips_a_single_point():
    enc, train, test = _data()
    a = make_deep_kernel_gp(lambda: DyHPOExtractor(enc.dim), torch.Generator().manual_seed(1))
    b = make_deep_kernel_gp(lambda: DyHPOExtractor(enc.dim), torch.Generator().manual_seed(1))
    la, lb = a.fit(train, 20), b.fit(train, 20)
    assert la == lb
    ma, sa = a.predict(train, test)
    mb, sb = b.predict(train, test)
    np.testing.assert_array_equal(ma, mb)
    np.testing.assert_array_equal(sa, sb)
    # a single training point cannot train BatchNorm: the fit is skipped, nothing breaks
    assert np.isnan(a.fit(train.subset(np.array([0])), 5))


def test_a_numerical_failure_rolls_back_and_a_bug_propagates(monkeypatch: pytest.MonkeyPatch) -> None:
    enc, train, _ = _data()
    model = make_deep_kernel_gp(lambda: DyHPOExtractor(enc.dim), torch.Generator().manual_seed(2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []

    def not_psd(batch: Batch) -> torch.Tensor:
        calls.append(1)
        for p in model.parameters():  # a half-done step that must be rolled back
            p.data.add_(1.0)
        raise NotPSDError("matrix not positive definite after jitter")

    monkeypatch.setattr(model, "loss", not_psd)
    assert np.isnan(model.fit(train, epochs=5)) and calls == [1]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k

    def bug(batch: Batch) -> torch.Tensor:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(model, "loss", bug)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        model.fit(train, epochs=5)
