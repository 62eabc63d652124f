"""The deep-kernel GP learns a known function, its uncertainty behaves, and it equals gpytorch's exact GP."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from surrogates.data import Batch, EncodedTask
from surrogates.encoding import MetaFeatureScaler, PipelineEncoder
from surrogates.gp import DeepKernelGP, make_deep_kernel_gp
from surrogates.gp_gpytorch import GpytorchDeepKernelGP, as_gpytorch
from surrogates.likelihood import NotPositiveDefiniteError, safe_cholesky
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
    monkeypatch.setattr(model, "fused_fit", False)  # the autograd path (the fused one is tested in test_fused.py)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []

    def not_psd(batch: Batch) -> torch.Tensor:
        calls.append(1)
        for p in model.parameters():  # a half-done step that must be rolled back
            p.data.add_(1.0)
        raise NotPositiveDefiniteError("kernel matrix not positive definite after adding jitter 1e-04")

    monkeypatch.setattr(model, "loss", not_psd)
    assert np.isnan(model.fit(train, epochs=5)) and calls == [1]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k

    def bug(batch: Batch) -> torch.Tensor:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(model, "loss", bug)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        model.fit(train, epochs=5)


def _pair(extractor: torch.nn.Module, seed: int = 4) -> tuple[DeepKernelGP, GpytorchDeepKernelGP]:
    lean = make_deep_kernel_gp(lambda: extractor, torch.Generator().manual_seed(seed))
    with torch.no_grad():  # away from the initial values, so that every term matters
        lean.gp.mean_module.raw_constant.fill_(0.3)
        lean.gp.covar_module.raw_outputscale.fill_(0.2)
        lean.gp.covar_module.base_kernel.raw_lengthscale.fill_(1.5)
        lean.likelihood.noise_covar.raw_noise.fill_(-3.0)
    return lean, as_gpytorch(copy.deepcopy(lean))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lean_likelihood_gradients_and_predictions_equal_gpytorchs(dtype: torch.dtype):
    enc, train, test = _data()
    rtol, atol = (1e-4, 1e-5) if dtype == torch.float32 else (1e-9, 1e-11)
    cast = {f: getattr(train, f).to(dtype) for f in ("x", "budget", "curve", "meta", "y", "cost")}
    train = Batch(**cast)
    test = Batch(**{f: getattr(test, f).to(dtype) for f in cast})
    for extractor in (DyHPOExtractor(enc.dim), QuickTuneExtractor(enc.n_model, enc.dim, 10, dropout=0)):
        lean, oracle = _pair(extractor.to(dtype))
        lean.to(dtype), oracle.to(dtype)
        lean.train(), oracle.train()
        a, b = lean.loss(train), oracle.loss(train)
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)
        a.backward(), b.backward()
        for (name, p), q in zip(lean.named_parameters(), oracle.parameters(), strict=True):
            assert p.grad is not None and q.grad is not None, name

            def message(m: str, n: str = name) -> str:
                return f"{n}: {m}"

            torch.testing.assert_close(p.grad, q.grad, rtol=rtol, atol=atol, msg=message)
        (m1, s1), (m2, s2) = lean.predict(train, test), oracle.predict(train, test)
        np.testing.assert_allclose(m1, m2, rtol=rtol, atol=atol)
        np.testing.assert_allclose(s1, s2, rtol=rtol, atol=atol)
        assert lean.state_dict().keys() == oracle.state_dict().keys()


def test_fits_of_the_lean_and_the_gpytorch_model_agree_in_float64():
    enc, train, test = _data()
    train, test = (Batch(*(getattr(b, f).double() for f in ("x", "budget", "curve", "meta", "y", "cost")))
                   for b in (train, test))  # fmt: skip
    lean, oracle = _pair(DyHPOExtractor(enc.dim).double())
    la, lb = lean.double().fit(train, 30, lr=1e-2), oracle.double().fit(train, 30, lr=1e-2)
    assert la == pytest.approx(lb, rel=1e-7)
    np.testing.assert_allclose(lean.predict(train, test)[0], oracle.predict(train, test)[0], rtol=1e-6)


def test_cholesky_adds_jitter_to_a_singular_matrix_and_fails_on_an_indefinite_one():
    v = torch.ones(4, 1)
    with pytest.warns(UserWarning, match="added jitter of 1.0e-06"):
        chol = safe_cholesky(v @ v.T)  # rank 1
    torch.testing.assert_close(chol @ chol.T, v @ v.T, atol=1e-4, rtol=0)
    with pytest.warns(UserWarning), pytest.raises(NotPositiveDefiniteError, match="not positive definite"):
        safe_cholesky(-torch.eye(3))
    with pytest.raises(NotPositiveDefiniteError, match="NaN"):
        safe_cholesky(torch.full((2, 2), float("nan")))


def test_a_failed_fit_rolls_back_to_the_state_before_it(monkeypatch: pytest.MonkeyPatch):
    enc, train, _ = _data()
    model = make_deep_kernel_gp(lambda: DyHPOExtractor(enc.dim), torch.Generator().manual_seed(0))
    monkeypatch.setattr(model, "fused_fit", False)  # the autograd path; test_fused.py checks the fused one
    before = model.state()
    bad = Batch(train.x, train.budget, train.curve, train.meta, torch.full_like(train.y, float("nan")), train.cost)
    assert np.isnan(model.fit(bad, 5))
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_training_mse_is_the_prior_means():
    enc, train, _ = _data()
    model = make_deep_kernel_gp(lambda: DyHPOExtractor(enc.dim), torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.gp.mean_module.raw_constant.fill_(0.25)
    assert model.training_mse(train) == pytest.approx(float(((train.y - 0.25) ** 2).mean()), rel=1e-6)


@pytest.mark.parametrize("compiled_fit", [True, False])
def test_the_fused_fit_returns_nan_on_a_numerical_failure_and_lets_a_bug_propagate(
    monkeypatch: pytest.MonkeyPatch, compiled_fit: bool
) -> None:
    from surrogates import compiled, fused

    if compiled_fit and not compiled.available():
        pytest.skip("numba is not installed")
    fit_class = compiled.CompiledFit if compiled_fit else fused.FusedFit
    monkeypatch.setattr(DeepKernelGP, "compiled_fit", compiled_fit)
    enc, train, _ = _data()
    model = make_deep_kernel_gp(lambda: DyHPOExtractor(enc.dim), torch.Generator().manual_seed(2))

    def not_pd(self: object, epochs: int) -> float:
        raise NotPositiveDefiniteError("kernel matrix not positive definite after adding jitter 1e-04")

    monkeypatch.setattr(fit_class, "run", not_pd)
    assert np.isnan(model.fit(train, epochs=5))

    def bug(self: object, epochs: int) -> float:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(fit_class, "run", bug)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        model.fit(train, epochs=5)
