# mypy: disable-error-code="union-attr,operator,arg-type,assignment,misc"
"""The compiled meta-training steps (numba) equal the autograd ones (``TorchMetaStep``), the oracle."""

from __future__ import annotations

import copy
import dataclasses
import warnings

import numpy as np
import pytest
import torch

from surrogates.compiled_meta import CompiledMetaStep, available
from surrogates.cost import CostPredictor
from surrogates.data import Batch, EncodedTask
from surrogates.encoding import MetaFeatureScaler, PipelineEncoder
from surrogates.gp import DeepKernelGP
from surrogates.metatrain import MetaTrainConfig, TorchMetaStep, lr_schedule, meta_train
from surrogates.nets import QuickTuneExtractor, init_parameters
from tests.surrogates.tiny import make_task

pytestmark = pytest.mark.skipif(not available(DeepKernelGP(QuickTuneExtractor(3, 5, 10))), reason="needs numba")

CONFIG = MetaTrainConfig(iterations=20, batch_size=24, lr=1e-2, gp_lr_factor=10.0)
FIELDS = ("x", "budget", "curve", "meta", "y", "cost")


def _models(dtype: torch.dtype, use_meta: bool = True) -> tuple[EncodedTask, DeepKernelGP, CostPredictor]:
    task = make_task("T", n=60, epochs=10, seed=3)
    enc = PipelineEncoder.fit(task.features, task.feature_names)
    et = EncodedTask(task, enc, MetaFeatureScaler.fit([task.meta]), 10)
    gen = torch.Generator().manual_seed(0)
    perf = DeepKernelGP(QuickTuneExtractor(enc.n_model, enc.dim, 10, hidden=16, out_dim=8, use_meta=use_meta))
    init_parameters(perf, gen)
    cost = CostPredictor(enc.dim, 10, 1.0, 0.5, hidden=16)
    init_parameters(cost, gen)
    return et, perf.to(dtype), cost.to(dtype)


def _batches(et: EncodedTask, count: int, dtype: torch.dtype) -> list[Batch]:
    rng = np.random.default_rng(1)
    out = []
    for i in range(count):
        b = et.sample(rng, CONFIG.batch_size)
        b = Batch(*(getattr(b, f).to(dtype) for f in FIELDS))
        b.cost[:: 3 + i % 2] = float("nan")  # rows without a known cost: the cost step uses the others
        if i == 2:
            b.cost[:] = float("nan")  # none: no cost step (Adam's step count does not advance either)
        out.append(b)
    return out


def _twins(dtype: torch.dtype, use_meta: bool = True):
    et, perf, cost = _models(dtype, use_meta)
    perf2, cost2 = copy.deepcopy(perf), copy.deepcopy(cost)
    for model, seed in ((perf, 11), (cost, 12), (perf2, 11), (cost2, 12)):
        for m in model.modules():
            if hasattr(m, "generator"):
                m.generator = torch.Generator().manual_seed(seed)
    return et, TorchMetaStep(perf, cost, CONFIG), CompiledMetaStep(perf2, cost2)


def _assert_states_close(a: dict, b: dict, tol: float) -> None:
    for (k, v), w in zip(a.items(), b.values(), strict=True):
        if k.startswith("gp.train_"):  # gpytorch's unused training-data buffers
            continue
        torch.testing.assert_close(w, v, rtol=tol, atol=tol, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.parametrize("use_meta", [True, False])
def test_compiled_steps_equal_autograd_steps_in_float64(use_meta: bool):
    """Same weights of both networks after 1 and 20 steps (two learning rates, dropout, partial and absent costs)
    and the same validation scores. Tolerances as the compiled fit's (tests/surrogates/test_compiled.py)."""
    lrs = lr_schedule(CONFIG)
    for steps, tol in ((1, 1e-7), (20, 1e-5)):
        et, torch_step, compiled_step = _twins(torch.float64, use_meta)
        batches = _batches(et, steps, torch.float64)
        with torch_step.running(), compiled_step.running():
            for it, b in enumerate(batches):
                torch_step.step(b.arrays(), lrs[it])
                compiled_step.step(b.arrays(), lrs[it])
            episodes = [(batches[0], batches[-1]), (batches[-1], batches[0])]
            scores = torch_step.validate(episodes), compiled_step.validate(episodes)
        _assert_states_close(torch_step.perf_state(), compiled_step.perf_state(), tol)
        _assert_states_close(torch_step.cost_state(), compiled_step.cost_state(), tol)
        np.testing.assert_allclose(scores[1], scores[0], rtol=tol)


def test_learning_rates_follow_torchs_cosine_annealing_per_group():
    lrs = lr_schedule(CONFIG)
    assert lrs.shape == (CONFIG.iterations, 3)
    assert tuple(lrs[0]) == (CONFIG.lr, CONFIG.lr * CONFIG.gp_lr_factor, CONFIG.lr)
    assert (np.diff(lrs, axis=0) < 0).all() and (lrs[-1] > CONFIG.lr_min).all()
    np.testing.assert_allclose(lrs[CONFIG.iterations // 2, 0], (CONFIG.lr + CONFIG.lr_min) / 2, rtol=1e-6)


def test_a_failed_step_leaves_the_weights_and_is_reported():
    et, _, step = _twins(torch.float32)
    batch = _batches(et, 1, torch.float32)[0]
    batch.budget[0, 0] = float("nan")  # NaN features -> NaN kernel matrix
    batch.cost[:] = float("nan")
    before = step.theta_p.copy()
    with pytest.warns(UserWarning, match="1 step\\(s\\) skipped"), step.running():
        step.step(batch.arrays(), lr_schedule(CONFIG)[0])
    np.testing.assert_array_equal(step.theta_p, before)
    assert step.steps_p == 0


def test_meta_training_compiled_and_through_autograd_select_alike_models():
    """End to end in float32: same sampling, draws and schedule, so validation scores agree to rounding."""
    train = [make_task(f"T{i}", n=30, epochs=8, seed=i) for i in range(3)]
    valid = [make_task("V", n=30, epochs=8, seed=9)]
    config = dataclasses.replace(CONFIG, iterations=60, val_every=20, val_episodes=3, hidden=8, out_dim=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither path warns on healthy data
        fast = meta_train(train, valid, config)
        slow = meta_train(train, valid, config, compiled=False)
    assert (fast.info["implementation"], slow.info["implementation"]) == ("numba", "torch")
    assert [h[0] for h in fast.info["history"]] == [20, 40, 60]
    np.testing.assert_allclose(np.array(fast.info["history"]), np.array(slow.info["history"]), rtol=1e-2)
    assert fast.info["best_iteration_perf"] == slow.info["best_iteration_perf"]
