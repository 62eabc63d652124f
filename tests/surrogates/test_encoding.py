"""Pipeline encoder, meta-feature scaler and the dataset-level folds."""

from __future__ import annotations

import numpy as np
import pytest

from surrogates.encoding import MetaFeatureScaler, PipelineEncoder, _fit_numeric
from surrogates.folds import paper_splits, split_of
from tests.surrogates.tiny import NAMES, make_table


def test_encoder_puts_models_first_and_scales_numerics_to_unit_range():
    x = make_table(50, np.random.default_rng(0))
    names = list(NAMES[3:]) + list(NAMES[:3])  # models last in the input
    x_in = np.concatenate([x[:, 3:], x[:, :3]], axis=1)
    enc = PipelineEncoder.fit(x_in, names)
    out = enc.transform(x_in, names)
    assert out.shape == (50, len(NAMES)) and out.dtype == np.float32
    assert enc.columns[: enc.n_model] == ("model=a", "model=b", "model=c")
    np.testing.assert_array_equal(out[:, enc.model_slice], x[:, :3])
    assert set(enc.scales) == {"lr", "momentum", "batch_size"}
    assert enc.scales["lr"].log and enc.scales["batch_size"].log and not enc.scales["momentum"].log
    assert out[:, enc.hp_slice].min() >= 0.0 and out[:, enc.hp_slice].max() <= 1.0
    # the inactive-momentum indicator stays a separate binary column
    np.testing.assert_array_equal(out[:, enc.columns.index("momentum=None")], x[:, 7])


def test_encoder_aligns_by_name_and_uses_training_statistics_only():
    rng = np.random.default_rng(1)
    enc = PipelineEncoder.fit(make_table(30, rng), NAMES)
    test = make_table(5, rng)
    test[:, 5] = 1.0  # lr far outside the training range: extrapolated, not refitted
    perm = np.random.default_rng(2).permutation(len(NAMES))
    a = enc.transform(test, NAMES)
    b = enc.transform(test[:, perm], [NAMES[j] for j in perm])
    np.testing.assert_array_equal(a, b)
    assert (a[:, enc.columns.index("lr")] > 1.0).all()


def test_encoder_missing_one_hot_is_zero_and_unknown_numeric_is_an_error():
    x = make_table(20, np.random.default_rng(0))
    enc = PipelineEncoder.fit(x, NAMES)
    without_c = [n for n in NAMES if n != "model=c"]
    out = enc.transform(x[:, [NAMES.index(n) for n in without_c]], without_c)
    assert (out[:, 2] == 0).all()
    with pytest.raises(ValueError, match="new_numeric"):
        enc.transform(np.concatenate([x, np.full((20, 1), 0.5)], axis=1), [*NAMES, "new_numeric"])
    with pytest.raises(ValueError, match="lacks numeric"):
        enc.transform(x[:, :5], NAMES[:5])
    with pytest.warns(UserWarning, match="model=d"):
        enc.transform(np.concatenate([x, np.ones((20, 1))], axis=1), [*NAMES, "model=d"])
    assert PipelineEncoder.from_dict(enc.to_dict()) == enc


def test_meta_feature_scaler_standardizes_on_training_datasets():
    metas = [{"train_size": s, "num_classes": c, "resolution": 128, "channels": 3} for s, c in [(480, 20), (9000, 300)]]
    scaler = MetaFeatureScaler.fit(metas)
    z = np.stack([scaler.transform(m) for m in metas])
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(z[:, :2].std(axis=0), 1.0, atol=1e-6)
    assert (z[:, 2:] == 0).all()  # constant descriptors are centred, not divided by 0
    with pytest.raises(ValueError, match="channels"):
        scaler.transform({"train_size": 1, "num_classes": 2, "resolution": 3})


def test_paper_splits_hold_every_dataset_out_once_and_are_disjoint():
    names = [f"D{i:02d}" for i in range(30)]
    splits = paper_splits(names)
    assert len(splits) == 5
    assert sorted(d for s in splits for d in s.test) == names
    for s in splits:
        assert (len(s.train), len(s.valid), len(s.test)) == (18, 6, 6)
        assert (
            not (set(s.train) & set(s.valid)) and not (set(s.train) & set(s.test)) and not (set(s.valid) & set(s.test))
        )
    assert split_of("D07", names).test == next(s for s in splits if "D07" in s.test).test
    assert paper_splits(list(reversed(names))) == splits
    with pytest.raises(ValueError, match="cannot be split"):
        paper_splits(names[:4])


def test_paper_splits_shuffle_the_source_keys_in_source_order():
    names = [f"D{i:02d}" for i in range(10)]
    keys = [f"src/set{i % 3}/{n}" for i, n in enumerate(reversed(names))]
    by_keys = paper_splits(names, keys=keys)
    shuffled = list(keys)
    np.random.default_rng(42).shuffle(shuffled)  # the reference: the key list shuffled in place
    fold = {k.rsplit("/", 1)[-1]: i % 5 for i, k in enumerate(shuffled)}
    assert all(fold[d] == 3 for d in by_keys[0].test) and all(fold[d] == 4 for d in by_keys[0].valid)
    assert by_keys != paper_splits(names)  # the order shuffled decides the folds
    # a key whose dataset is not given keeps its place in the shuffle; a dataset without a key follows the keys
    fewer = paper_splits(names[1:], keys=keys)
    assert [tuple(d for d in s.test if d != "D00") for s in by_keys] == [s.test for s in fewer]
    assert paper_splits(names, keys=keys[:-1]) == paper_splits(names, keys=[*keys[:-1], f"x/{names[0]}"])
    with pytest.raises(ValueError, match="name one dataset twice"):
        paper_splits(names, keys=["a/D01", "b/D01"])


def test_zeros_on_a_log_column_fitted_without_zeros_map_one_decade_below_not_to_log0():
    scale = _fit_numeric(np.array([1e-4, 1e-3, 1e-2]))
    assert scale.log and scale.offset == 0.0
    with np.errstate(all="raise"):  # no "divide by zero in log10"
        out = scale.apply(np.array([0.0, 1e-4, 1e-2, 1e-7]))
    np.testing.assert_allclose(out, [-0.5, 0.0, 1.0, -0.5])
