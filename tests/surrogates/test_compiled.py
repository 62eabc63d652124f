# mypy: disable-error-code="union-attr,operator,assignment,arg-type,misc,return-value"
"""The compiled fit (numba) equals the fused fit (and so the autograd fit) of the same model."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch

from surrogates.compiled import CompiledFit, available
from surrogates.data import Batch
from surrogates.fused import FusedFit
from surrogates.gp import DeepKernelGP, make_deep_kernel_gp
from surrogates.likelihood import NotPositiveDefiniteError
from surrogates.nets import DyHPOExtractor
from tests.surrogates.test_fused import _batches, _extractors, _pair, _Subclass

pytestmark = pytest.mark.skipif(not available(), reason="numba is not installed")


def _state(model: DeepKernelGP) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _twins(name: str, n: int, dtype: torch.dtype) -> tuple[DeepKernelGP, DeepKernelGP, Batch, Batch]:
    enc, train, test = _batches(n, dtype)
    fused, _ = _pair(_extractors(enc)[name], dtype)
    twin = copy.deepcopy(fused)
    for a, b in zip(fused.modules(), twin.modules(), strict=True):  # equal dropout streams
        if getattr(a, "generator", None) is not None:
            a.generator = torch.Generator().manual_seed(11)
            b.generator = torch.Generator().manual_seed(11)
    fused.train(), twin.train()
    return fused, twin, train, test


@pytest.mark.parametrize("name", ["dyhpo", "quicktune", "quicktune-no-meta"])
@pytest.mark.parametrize("n", [2, 7, 60])
def test_compiled_fit_equals_fused_fit_in_float64(name: str, n: int):
    """Same loss, weights, BatchNorm statistics and predictions after 1 and 30 steps (dropout draws included).

    After one step they agree to rounding (1e-7: Adam divides gradients of ~1e-8 by |g| + 1e-8); after 30,
    Adam has amplified rounding where a gradient is ~0 (DyHPO's BatchNorm on 2 points: up to 3e-7 in a
    weight), as between the fused and the autograd fit.
    """
    for steps, tol in ((1, 1e-7), (30, 1e-5)):
        fused, compiled, train, test = _twins(name, n, torch.float64)
        la = FusedFit(fused, train, lr=1e-2).run(steps)
        lb = CompiledFit(compiled, train, lr=1e-2).run(steps)
        assert lb == pytest.approx(la, rel=tol)
        for (k, v), w in zip(fused.state_dict().items(), compiled.state_dict().values(), strict=True):
            if k.startswith("gp.train_"):  # gpytorch's unused training-data buffers
                continue
            torch.testing.assert_close(w, v, rtol=tol, atol=tol, msg=lambda m, k=k: f"{k}: {m}")
        np.testing.assert_allclose(compiled.predict(train, test)[0], fused.predict(train, test)[0], rtol=tol)


def test_float32_model_is_fitted_in_float64_and_stays_float32():
    fused, compiled, train, test = _twins("quicktune", 40, torch.float32)
    la, lb = FusedFit(fused, train, 1e-3).run(100), CompiledFit(compiled, train, 1e-3).run(100)
    assert lb == pytest.approx(la, rel=1e-3, abs=1e-4)  # float32 rounding, amplified by Adam where gradients ~0
    assert all(p.dtype == torch.float32 for p in compiled.parameters())
    np.testing.assert_allclose(compiled.predict(train, test)[0], fused.predict(train, test)[0], atol=1e-2)


def test_deep_kernel_gp_fits_with_the_compiled_fit(monkeypatch: pytest.MonkeyPatch):
    calls: list[int] = []
    run = CompiledFit.run

    def counted(self: CompiledFit, epochs: int) -> float:
        calls.append(epochs)
        return run(self, epochs)

    monkeypatch.setattr(CompiledFit, "run", counted)
    _, model, train, _ = _twins("dyhpo", 10, torch.float32)
    assert np.isfinite(model.fit(train, 7))
    assert calls == [7]


def test_failures_leave_the_model_untouched():
    _, model, train, _ = _twins("dyhpo", 20, torch.float32)
    before = _state(model)
    nan_y = Batch(train.x, train.budget, train.curve, train.meta, torch.full_like(train.y, float("nan")), train.cost)
    assert np.isnan(model.fit(nan_y, 5))  # NaN targets: NaN weights after the first step, NaN kernel at the second
    with pytest.raises(NotPositiveDefiniteError, match="NaN"):
        CompiledFit(model, nan_y, 1e-3).run(5)
    nan_x = Batch(torch.full_like(train.x, float("nan")), train.budget, train.curve, train.meta, train.y, train.cost)
    with pytest.raises(NotPositiveDefiniteError, match="NaN"):
        CompiledFit(model, nan_x, 1e-3).run(5)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])
    enc, train, _ = _batches(10, torch.float32)
    with pytest.raises(TypeError, match="no compiled fit for extractor _Subclass"):
        CompiledFit(DeepKernelGP(_Subclass(enc.dim)), train, 1e-3)


def test_an_indefinite_kernel_matrix_gets_jitter_then_fails():
    """Duplicated inputs with a tiny noise: gpytorch's jitter is added (and warned about) as in ``safe_cholesky``."""
    enc, train, _ = _batches(10, torch.float64)
    model = make_deep_kernel_gp(lambda: DyHPOExtractor(enc.dim), torch.Generator().manual_seed(0)).to(torch.float64)
    dup = Batch(*(torch.cat([t, t, t]) for t in (train.x, train.budget, train.curve, train.meta, train.y, train.cost)))
    with torch.no_grad():
        model.likelihood.noise_covar.raw_noise.fill_(-40.0)  # noise -> its floor 1e-4
        model.gp.covar_module.raw_outputscale.fill_(40.0)  # outputscale 40: the floor is relatively 2.5e-6
    model.train()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            CompiledFit(model, dup, 1e-3).run(1)
        except NotPositiveDefiniteError as err:
            assert "after adding jitter 1e-04" in str(err)
    assert any("added jitter" in str(w.message) for w in caught) or not caught


def test_every_array_of_a_compiled_fit_is_aligned_so_its_rounding_does_not_depend_on_the_allocator(
    monkeypatch: pytest.MonkeyPatch,
):
    from numba import njit

    from surrogates import compiled, jit_kernels

    @njit
    def addresses(k: int) -> np.ndarray:  # arrays numba allocates (as the kernels' temporaries and np.dot results)
        out = np.empty(k, np.int64)
        for i in range(k):
            out[i] = np.empty(3 + i, np.float32).ctypes.data
        return out

    assert not (addresses(17) % jit_kernels.ALIGNMENT).any()
    odd = np.arange(40, dtype=np.float32)[1:].reshape(3, 13)[:, ::2]  # not contiguous, not aligned
    copy_ = compiled._aligned(odd)
    assert copy_.ctypes.data % jit_kernels.ALIGNMENT == 0 and copy_.flags.c_contiguous
    np.testing.assert_array_equal(copy_, odd)
    seen: list[int] = []
    for name in ("dyhpo_fit", "quicktune_fit"):
        kernel = getattr(jit_kernels, name)

        def spy(*args: object, _kernel: object = kernel) -> object:
            floats = [a for a in args if isinstance(a, np.ndarray) and a.dtype.kind == "f"]  # what BLAS may see
            seen.extend(a.ctypes.data % jit_kernels.ALIGNMENT for a in floats)
            return _kernel(*args)

        monkeypatch.setattr(jit_kernels, name, spy)
    for name in ("dyhpo", "quicktune"):
        _, model, train, _ = _twins(name, 9, torch.float32)
        assert np.isfinite(CompiledFit(model, train, 1e-3).run(3))
    assert len(seen) > 15 and not any(seen)  # weights, Adam moments, features, curve windows, targets, ...
