# mypy: disable-error-code="union-attr,operator,assignment,arg-type,misc,return-value"
"""The fused fit (hand-written backward, flat fused Adam) equals the autograd fit of the same model."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from surrogates.data import Batch, EncodedTask
from surrogates.encoding import MetaFeatureScaler, PipelineEncoder
from surrogates.fused import FusedFit, _sigmoid, _softplus, supports
from surrogates.gp import DeepKernelGP, make_deep_kernel_gp
from surrogates.nets import DyHPOExtractor, QuickTuneExtractor
from tests.surrogates.tiny import make_task

FIELDS = ("x", "budget", "curve", "meta", "y", "cost")


def _batches(n: int, dtype: torch.dtype) -> tuple[PipelineEncoder, Batch, Batch]:
    task = make_task("T", n=120, epochs=10, seed=3)
    enc = PipelineEncoder.fit(task.features, task.feature_names)
    et = EncodedTask(task, enc, MetaFeatureScaler(), 10)
    rng = np.random.default_rng(0)
    train, test = et.sample(rng, n), et.sample(rng, 40)
    return enc, *(Batch(*(getattr(b, f).to(dtype) for f in FIELDS)) for b in (train, test))


def _extractors(enc: PipelineEncoder) -> dict[str, torch.nn.Module]:
    return {
        "dyhpo": DyHPOExtractor(enc.dim),
        "quicktune": QuickTuneExtractor(enc.n_model, enc.dim, 10),
        "quicktune-no-meta": QuickTuneExtractor(enc.n_model, enc.dim, 10, use_meta=False, dropout=0.0),
    }


@pytest.fixture(autouse=True)
def _fused_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """``DeepKernelGP.fit`` runs the fused fit here (the compiled one is tested in test_compiled.py)."""
    monkeypatch.setattr(DeepKernelGP, "compiled_fit", False)


class _Subclass(DyHPOExtractor):
    """A network the fused fit does not know (it could override anything)."""


class _Autograd(DeepKernelGP):
    fused_fit = False


def _pair(extractor: torch.nn.Module, dtype: torch.dtype) -> tuple[DeepKernelGP, DeepKernelGP]:
    fused = make_deep_kernel_gp(lambda: extractor, torch.Generator().manual_seed(5)).to(dtype)
    with torch.no_grad():  # away from the initial values, so that every term matters
        fused.gp.mean_module.raw_constant.fill_(0.3)
        fused.likelihood.noise_covar.raw_noise.fill_(-3.0)
    auto = _Autograd(copy.deepcopy(fused.extractor)).to(dtype)
    auto.load_state_dict(fused.state_dict())
    for a, b in zip(fused.modules(), auto.modules(), strict=True):  # equal dropout streams
        if getattr(a, "generator", None) is not None:
            a.generator = torch.Generator().manual_seed(11)
            b.generator = torch.Generator().manual_seed(11)
    return fused, auto


@pytest.mark.parametrize("name", ["dyhpo", "quicktune", "quicktune-no-meta"])
@pytest.mark.parametrize("n", [2, 7, 60])
def test_fused_gradient_equals_autograd(name: str, n: int):
    enc, train, _ = _batches(n, torch.float64)
    fused, auto = _pair(_extractors(enc)[name], torch.float64)
    gen_state = [m.generator.get_state() for m in fused.modules() if getattr(m, "generator", None) is not None]
    fit = FusedFit(fused, train, lr=1e-3)
    fused.train(), auto.train()
    loss = fit.step()
    dropouts = [m for m in auto.modules() if getattr(m, "generator", None) is not None]
    for m, state in zip(dropouts, gen_state, strict=True):
        m.generator.set_state(state)
    ref = auto.loss(train)
    ref.backward()
    assert float(loss) == pytest.approx(float(ref.detach()), rel=1e-12)
    grads = dict(zip([id(p) for p in fit.flat.params], fit.flat.grads, strict=True))
    for (pname, p), q in zip(auto.named_parameters(), fused.parameters(), strict=True):
        assert p.grad is not None
        torch.testing.assert_close(grads[id(q)], p.grad, rtol=1e-9, atol=1e-12, msg=lambda m, k=pname: f"{k}: {m}")


@pytest.mark.parametrize("name", ["dyhpo", "quicktune"])
def test_fused_fit_equals_autograd_fit_and_predicts_alike(name: str):
    enc, train, test = _batches(30, torch.float64)
    fused, auto = _pair(_extractors(enc)[name], torch.float64)
    la, lb = fused.fit(train, 40, lr=1e-2), auto.fit(train, 40, lr=1e-2)
    assert la == pytest.approx(lb, rel=1e-8)
    for (k, v), w in zip(fused.state_dict().items(), auto.state_dict().values(), strict=True):
        torch.testing.assert_close(v, w, rtol=1e-5, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")
    np.testing.assert_allclose(fused.predict(train, test)[0], auto.predict(train, test)[0], rtol=1e-7)


def test_fused_adam_is_torchs_fused_adam():
    """Same gradients in, bit-for-bit the same parameters out as ``torch.optim.Adam(fused=True)``."""
    enc, train, _ = _batches(20, torch.float32)
    fused, _ = _pair(_extractors(enc)["dyhpo"], torch.float32)
    fit = FusedFit(fused, train, lr=1e-3)
    params = [p.detach().clone().requires_grad_() for p in fit.flat.params]
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    for _ in range(3):
        fit.step()
        for p, g in zip(params, fit.flat.grads, strict=True):
            p.grad = g.clone()
        opt.step()
    for p, v in zip(params, fit.flat.values, strict=True):
        assert torch.equal(p.detach(), v)


def test_float32_fit_stays_close_to_autograd():
    """In float32 the two trajectories drift apart by rounding only (Adam amplifies it where gradients are ~0)."""
    enc, train, test = _batches(40, torch.float32)
    for name in ("dyhpo", "quicktune"):
        fused, auto = _pair(_extractors(enc)[name], torch.float32)
        la, lb = fused.fit(train, 100), auto.fit(train, 100)
        assert la == pytest.approx(lb, rel=1e-3, abs=1e-4)
        np.testing.assert_allclose(fused.predict(train, test)[0], auto.predict(train, test)[0], atol=1e-2)


def test_failed_fused_fit_leaves_the_model_untouched_and_unsupported_models_are_refused():
    enc, train, _ = _batches(20, torch.float32)
    model = make_deep_kernel_gp(lambda: DyHPOExtractor(enc.dim), torch.Generator().manual_seed(0))
    before = model.state()
    bad = Batch(train.x, train.budget, train.curve, train.meta, torch.full_like(train.y, float("nan")), train.cost)
    assert np.isnan(model.fit(bad, 5))
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])
    other = DeepKernelGP(_Subclass(enc.dim))
    assert not supports(other)
    with pytest.raises(TypeError, match="no fused fit for extractor _Subclass"):
        FusedFit(other, train, 1e-3)


def test_float_softplus_and_its_derivative_are_torchs():
    x = torch.tensor([-800.0, -30.0, -3.0, -1e-3, 0.0, 0.7, 19.9, 20.0, 20.5, 800.0], dtype=torch.float64)
    assert [_softplus(v) for v in x.tolist()] == pytest.approx(torch.nn.functional.softplus(x).tolist(), rel=1e-15)
    assert [_sigmoid(v) for v in x.tolist()] == pytest.approx(torch.sigmoid(x).tolist(), rel=1e-15)
