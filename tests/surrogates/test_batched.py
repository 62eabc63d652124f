"""The batched fit equals each member's unbatched fused fit; the batcher runs threads' fits in rounds."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch

from surrogates.batched import BatchedFit, FitBatcher, current_batcher
from surrogates.data import Batch
from surrogates.fused import FusedFit
from surrogates.gp import DeepKernelGP
from tests.surrogates.test_fused import _batches, _extractors, _pair

SIZES = (7, 12, 2)  # padded, the largest, the smallest fit


def _members(name: str, dtype: torch.dtype, sizes=SIZES) -> tuple[list[DeepKernelGP], list[DeepKernelGP], list[Batch]]:
    """Models of one architecture with different weights and dropout streams, their copies and batches."""
    models, copies, batches = [], [], []
    for i, n in enumerate(sizes):
        enc, train, _ = _batches(n + i, dtype)  # other observations per member
        train = train.subset(np.arange(n))
        model, _ = _pair(_extractors(enc)[name], dtype)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * i)
        twin = copy.deepcopy(model)
        for a, b in zip(model.modules(), twin.modules(), strict=True):
            if getattr(a, "generator", None) is not None:
                a.generator = torch.Generator().manual_seed(20 + i)  # type: ignore[assignment]
                b.generator = torch.Generator().manual_seed(20 + i)  # type: ignore[assignment]
        models.append(model.train())
        copies.append(twin.train())
        batches.append(train)
    return models, copies, batches


@pytest.mark.parametrize("name", ["dyhpo", "quicktune", "quicktune-no-meta"])
def test_batched_step_equals_each_members_fused_step(name: str):
    models, copies, batches = _members(name, torch.float64)
    fit = BatchedFit(models, batches, lr=1e-3)
    fit._keep(list(range(len(models))))
    losses, failed = fit.step()
    assert failed == []
    assert losses is not None and len(losses) == len(models)
    for b, (twin, batch) in enumerate(zip(copies, batches, strict=True)):
        single = FusedFit(twin, batch, lr=1e-3)
        loss = single.step()
        assert loss is not None
        assert float(losses[b]) == pytest.approx(float(loss), rel=1e-12)
        torch.testing.assert_close(fit.grad[b], single.flat.grad, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(fit.value[b], single.flat.value, rtol=1e-9, atol=1e-10)  # Adam: ~lr * sign(g)


@pytest.mark.parametrize("name", ["dyhpo", "quicktune"])
def test_batched_fit_of_different_lengths_equals_the_unbatched_fits(name: str):
    models, copies, batches = _members(name, torch.float64)
    epochs = [6, 11, 1]
    losses = BatchedFit(models, batches, lr=1e-2).run(epochs)
    for model, twin, batch, e, loss in zip(models, copies, batches, epochs, losses, strict=True):
        assert loss == pytest.approx(twin.fit(batch, e, lr=1e-2), rel=1e-8)
        for (k, v), w in zip(model.state_dict().items(), twin.state_dict().values(), strict=True):
            torch.testing.assert_close(v, w, rtol=1e-5, atol=1e-6, msg=f"{k}")


def test_a_failing_member_is_left_untouched_and_the_others_fit():
    models, copies, batches = _members("dyhpo", torch.float32)
    bad = batches[1]
    batches[1] = Batch(bad.x, bad.budget, bad.curve, bad.meta, torch.full_like(bad.y, float("nan")), bad.cost)
    before = copy.deepcopy(models[1].state_dict())
    losses = BatchedFit(models, batches, lr=1e-3).run([1, 8, 0])  # member 1 finishes alone (fused), and fails
    assert np.isnan(losses[1]) and np.isnan(losses[2]) and np.isfinite(losses[0])
    for k, v in models[1].state_dict().items():
        assert torch.equal(v, before[k]), k
    for k, v in models[2].state_dict().items():  # no steps: untouched
        assert torch.equal(v, copies[2].state_dict()[k]), k
    assert losses[0] == pytest.approx(copies[0].fit(batches[0], 1), rel=1e-5)


def test_models_of_other_architectures_are_refused():
    models, _, batches = _members("dyhpo", torch.float32)
    other, _, more = _members("quicktune", torch.float32, sizes=(3,))
    with pytest.raises(TypeError, match="one architecture"):
        BatchedFit(models + other, batches + more, 1e-3)
    with pytest.raises(ValueError, match="one batch per model"):
        BatchedFit(models, batches[:1], 1e-3)


def test_batcher_runs_the_threads_fits_in_rounds_with_the_batched_results():
    models, copies, batches = _members("quicktune", torch.float64)
    epochs = [[5, 3], [2], [4, 4, 1]]  # fits per thread: rounds of 3, 2 and 1 members
    batcher = FitBatcher(3)
    got: dict[int, list[float]] = {}

    inside: dict[int, object] = {}
    after: dict[int, object] = {}

    def replay(i: int) -> None:
        with batcher.member():
            inside[i] = current_batcher()
            got[i] = [models[i].fit(batches[i], e, lr=1e-2) for e in epochs[i]]
        after[i] = current_batcher()  # also in the thread that ran the last round while leaving

    threads = [threading.Thread(target=replay, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inside == {i: batcher for i in range(3)} and after == {i: None for i in range(3)}
    assert batcher.rounds == 3 and batcher.fits == 6
    for i, twin in enumerate(copies):  # the same fits, one after the other, unbatched
        want = [twin.fit(batches[i], e, lr=1e-2) for e in epochs[i]]
        assert got[i] == pytest.approx(want, rel=1e-8)
