"""Meta-training: better than untrained on held-out data, save/load round trip, cache keyed by content."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metagen.store.synth import synthesize
from surrogates.data import EncodedTask, content_hash, load_store_tasks
from surrogates.metatrain import MetaModel, MetaTrainConfig, cache_path, load_or_meta_train, meta_train
from tests.surrogates.tiny import make_task

FAST = MetaTrainConfig(iterations=60, batch_size=16, lr=1e-2, val_every=20, val_episodes=3, hidden=8, out_dim=8)


@pytest.fixture(scope="module")
def trained() -> tuple[MetaModel, list]:
    torch.set_num_threads(1)
    train = [make_task(f"T{i}", n=30, epochs=8, seed=i) for i in range(3)]
    valid = [make_task("V", n=30, epochs=8, seed=9)]
    return meta_train(train, valid, FAST), train


def test_meta_training_selects_a_checkpoint_and_predicts_held_out_data(trained):
    model, _ = trained
    assert model.info["best_iteration_perf"] in (20, 40, 60)
    assert model.info["train_datasets"] == ["T0", "T1", "T2"] and model.info["valid_datasets"] == ["V"]
    test = EncodedTask(make_task("X", n=30, epochs=8, seed=11), model.encoder, model.meta_scaler, model.max_epochs)
    rng = np.random.default_rng(0)
    ctx, query = test.sample(rng, 16), test.sample(rng, 32)
    mean, std = model.perf_model().predict(ctx, query)
    assert mean.shape == std.shape == (32,) and np.isfinite(mean).all()
    assert model.cost_model().predict(query).shape == (32,)


def test_every_meta_training_step_runs_in_training_mode_also_after_validations(monkeypatch: pytest.MonkeyPatch):
    """Modes are switched only around validations; a step after one must still see dropout and train mode (the
    autograd loop; the compiled one never leaves training mode, tests/surrogates/test_compiled_meta.py)."""
    from surrogates.cost import CostPredictor
    from surrogates.gp import DeepKernelGP

    modes: list[tuple[bool, ...]] = []
    perf_loss, cost_loss = DeepKernelGP.loss, CostPredictor.loss

    def perf_spy(self, batch):
        modes.append(tuple(m.training for m in self.modules()))
        return perf_loss(self, batch)

    def cost_spy(self, batch):
        if torch.is_grad_enabled():  # validation scores the cost net under no_grad, in eval mode
            modes.append(tuple(m.training for m in self.modules()))
        return cost_loss(self, batch)

    monkeypatch.setattr(DeepKernelGP, "loss", perf_spy)
    monkeypatch.setattr(CostPredictor, "loss", cost_spy)
    train = [make_task(f"T{i}", n=20, epochs=6, seed=i) for i in range(2)]
    meta_train(train, [make_task("V", n=20, epochs=6, seed=9)], FAST, compiled=False)
    assert len(modes) == 2 * FAST.iterations and all(all(m) for m in modes)


def test_save_load_round_trip_gives_equal_predictions(trained, tmp_path):
    model, train = trained
    model.save(tmp_path / "m.pt")
    loaded = MetaModel.load(tmp_path / "m.pt")
    assert loaded.encoder == model.encoder and loaded.meta_scaler == model.meta_scaler and loaded.config == FAST
    t = EncodedTask(train[0], model.encoder, model.meta_scaler, model.max_epochs)
    rng = np.random.default_rng(1)
    ctx, query = t.sample(rng, 16), t.sample(rng, 16)
    for a, b in zip(model.perf_model().predict(ctx, query), loaded.perf_model().predict(ctx, query), strict=True):
        np.testing.assert_array_equal(a, b)
    cost, loaded_cost = model.cost_model(), loaded.cost_model()
    assert cost is not None and loaded_cost is not None
    np.testing.assert_array_equal(cost.predict(query), loaded_cost.predict(query))


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="delete it to retrain"):
        MetaModel.load(bad)


def test_store_meta_training_is_cached_by_content_fold_and_config(tmp_path, monkeypatch):
    store = tmp_path / "store"
    synthesize(store, "tiny", seed=0)
    tasks = load_store_tasks(str(store), "micro")
    assert [t.name for t in tasks] == ["BCT", "BRD", "CRS"] and tasks[0].features.shape[1] == len(
        tasks[0].feature_names
    )
    cache = tmp_path / "cache"
    first = load_or_meta_train(str(store), "micro", ["BCT", "BRD"], ["CRS"], fold=1, cache_dir=cache, config=FAST)
    files = list(cache.glob("*.pt"))
    assert len(files) == 1 and "fold1" in files[0].name and FAST.digest() in files[0].name

    def boom(*args, **kwargs):
        raise AssertionError("retrained although cached")

    monkeypatch.setattr("surrogates.metatrain.meta_train", boom)
    again = load_or_meta_train(str(store), "micro", ["BRD", "BCT"], ["CRS"], fold=1, cache_dir=cache, config=FAST)
    assert again.info["train_hash"] == first.info["train_hash"] == content_hash(tasks[:2])
    with pytest.raises(AssertionError, match="retrained"):  # another config is another cache entry
        load_or_meta_train(str(store), "micro", ["BCT", "BRD"], ["CRS"], 1, cache, MetaTrainConfig(iterations=61))
    with pytest.raises(ValueError, match="both"):
        load_or_meta_train(str(store), "micro", ["BCT", "BRD"], ["BRD"], 1, cache, FAST)
    with pytest.raises(ValueError, match="NOPE"):
        load_store_tasks(str(store), "micro", ["NOPE"])
    assert cache_path(cache, "micro", 1, "h", FAST) != cache_path(cache, "micro", 2, "h", FAST)
