"""Resolving a config into a pipeline: sampling, checks and the run id."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from metagen.finetune import (
    DatasetNotFoundError,
    FinetuneConfig,
    FinetuneConfigError,
    HyperparameterError,
    UnknownModelError,
    resolve_pipeline,
    run_id_of,
)
from metagen.finetune.pipeline import sample_hyperparameters
from metagen.search_space import SearchSpace
from metagen.store.schema import RECIPE, make_run_id, pipeline_id

_INFO_ONLY: dict[str, str] = {}


@pytest.fixture(autouse=True)
def info_only_dataset(tmp_path):
    """A folder with just an info.json: all resolve_pipeline reads of a dataset (its ``tolerates``)."""
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "info.json").write_text(json.dumps({"dataset_name": "ds"}))
    _INFO_ONLY["path"] = str(tmp_path / "ds")
    yield tmp_path / "ds"
    _INFO_ONLY.clear()


def cfg(**kw: Any) -> FinetuneConfig:
    base: dict[str, Any] = {"dataset": _INFO_ONLY["path"], "store": "unused", "model": "mobilevit_xxs"}
    base.update(kw)
    return FinetuneConfig(**base)


def test_the_recipe_defaults_to_imagenet_and_follows_what_the_dataset_tolerates(info_only_dataset):
    _, plain = resolve_pipeline(cfg(seed=0))
    assert not set(RECIPE) & set(plain)  # ImageNet recipe: not in the pipeline, ids unchanged
    info = {"dataset_name": "ds", "tolerates": {"hflip": False, "min_crop_scale": 0.5}}
    (info_only_dataset / "info.json").write_text(json.dumps(info))
    _, clipped = resolve_pipeline(cfg(seed=0))
    assert {k: clipped[k] for k in ("crop_scale_min", "hflip")} == {"crop_scale_min": 0.5, "hflip": 0.0}
    assert "color_jitter" not in clipped
    assert pipeline_id("m", clipped) != pipeline_id("m", plain)
    _, explicit = resolve_pipeline(cfg(seed=0, crop_scale_min=0.7, color_jitter=0.0))
    assert (explicit["crop_scale_min"], explicit["hflip"], explicit["color_jitter"]) == (0.7, 0.0, 0.0)
    with pytest.raises(FinetuneConfigError, match="must not be flipped"):
        resolve_pipeline(cfg(hflip=0.5))
    with pytest.raises(FinetuneConfigError, match=r"min_crop_scale=0\.5"):
        resolve_pipeline(cfg(crop_scale_min=0.2))
    with pytest.raises(FinetuneConfigError, match=r"must be in \(0, 1\]"):
        resolve_pipeline(cfg(crop_scale_min=1.5))


def test_missing_hyperparameters_are_sampled_deterministically_and_respect_conditions():
    a = resolve_pipeline(cfg(seed=3, hp={"lr": 0.001}))
    b = resolve_pipeline(cfg(seed=3, hp={"lr": 0.001}))
    c = resolve_pipeline(cfg(seed=4, hp={"lr": 0.001}))
    assert a == b
    assert a != c
    model, hps = a
    assert model == "mobilevit_xxs.cvnets_in1k"
    assert hps["lr"] == 0.001
    assert ("opt_betas" in hps) == (hps["opt"] in ("adam", "adamw", "adamp"))
    assert ("momentum" in hps) == (hps["opt"] == "momentum")
    assert ("patience_epochs" in hps) == (hps["sched"] == "plateau")


def test_a_space_listing_a_child_before_its_parent_is_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "models: [{name: m, alias: m, params_m: 1.0}]\nhyperparameters:\n"
        "  lora_alpha: {values: [8], active_if: {lora_rank: [4]}}\n  lora_rank: {values: [0, 4]}\n"
    )
    with pytest.raises(ValueError, match="lora_alpha is active_if lora_rank, which must be listed before it"):
        SearchSpace.load(path)


def test_a_default_outside_the_values_is_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("models: [{name: m, alias: m, params_m: 1.0}]\nhyperparameters:\n"
                    "  lr: {values: [0.1, 0.01], default: 0.05}\n")  # fmt: skip
    with pytest.raises(ValueError, match=r"lr's default 0.05 is not one of its values \[0.1, 0.01\]"):
        SearchSpace.load(path)


def test_default_pipelines_are_timms_train_defaults_on_each_grid():
    v1, hub6 = SearchSpace.load("v1"), SearchSpace.load("hub6")
    d1, d6 = v1.default_pipeline("xcit_small_12_p8_384_dist"), hub6.default_pipeline("efficientnet_lite0")
    assert d1["model"] == "xcit_small_12_p8_384.fb_dist_in1k" and d6["model"] == "efficientnet_lite0"
    assert (d1["opt"], d1["lr"], d1["sched"], d1["smoothing"], d1["mixup"], d1["cutmix"]) == (
        "sgd",
        0.01,
        "cosine",
        0.1,
        0.0,
        0.0,
    )
    assert (d1["batch_size"], d1["warmup_epochs"]) == (128, 5)
    assert (d6["batch_size"], d6["warmup_epochs"]) == (64, 2)  # hub6's grid: batch <= 64, warm-up scaled to 20 epochs
    assert {k: v for k, v in d1.items() if k not in ("model", "batch_size", "warmup_epochs")} == {
        k: v for k, v in d6.items() if k not in ("model", "batch_size", "warmup_epochs")
    }
    assert "momentum" not in d1 and "auto_augment" not in d1  # inactive under the defaults


def test_sampled_values_do_not_shift_when_one_is_given():
    space = SearchSpace.load("v1")
    free = sample_hyperparameters(space, {}, np.random.default_rng(0))
    fixed = sample_hyperparameters(space, {"drop": 0.4 if free["drop"] != 0.4 else 0.3}, np.random.default_rng(0))
    same = [k for k in ("pct_to_freeze", "lr", "batch_size", "mixup", "weight_decay") if free[k] == fixed[k]]
    assert len(same) == 5


def test_model_is_sampled_when_not_given_and_aliases_resolve():
    model, _ = resolve_pipeline(cfg(model=None, seed=1, max_params_m=2.0))
    assert model in {m.name for m in SearchSpace.load("v1").restrict(max_params_m=2.0).models}
    assert resolve_pipeline(cfg(model="tf_efficientnet_b4_ns"))[0] == "tf_efficientnet_b4.ns_jft_in1k"
    assert resolve_pipeline(cfg(model="efficientnet_lite0"))[0] == "efficientnet_lite0.ra_in1k"


def test_unknown_model_lists_the_allowed_ones():
    with pytest.raises(UnknownModelError, match=r"allowed.*dla46x_c\.in1k"):
        resolve_pipeline(cfg(model="resnet50"))


def test_bad_hyperparameter_value_lists_the_allowed_values():
    with pytest.raises(HyperparameterError, match=r"lr=0.3 .*allowed values: \[0.01, 0.005"):
        resolve_pipeline(cfg(hp={"lr": 0.3}))
    with pytest.raises(HyperparameterError, match="unknown hyperparameter"):
        resolve_pipeline(cfg(hp={"learning_rate": 0.001}))
    with pytest.raises(HyperparameterError, match="only active when opt"):
        resolve_pipeline(cfg(hp={"opt": "adam", "momentum": 0.9}))
    assert isinstance(HyperparameterError("x"), ValueError)


def test_given_values_are_matched_to_the_listed_ones():
    _, hps = resolve_pipeline(cfg(hp={"lr": "1e-3", "layer_decay": "null", "pct_to_freeze": 1, "opt": "adam",
                                      "opt_betas": "0 0.99", "batch_size": 32.0}))  # fmt: skip
    assert hps["lr"] == 0.001 and hps["layer_decay"] is None and hps["pct_to_freeze"] == 1.0
    assert hps["opt_betas"] == "0 0.99" and hps["batch_size"] == 32 and isinstance(hps["batch_size"], int)


def test_run_settings_that_change_the_curve_enter_the_pipeline():
    _, plain = resolve_pipeline(cfg(seed=0))
    _, changed = resolve_pipeline(cfg(seed=0, pretrained="none", img_size=64, schedule_epochs=60, epochs=10))
    assert "pretrained" not in plain and "img_size" not in plain
    assert changed["pretrained"] == "none" and changed["img_size"] == 64 and changed["schedule_epochs"] == 60
    _, native = resolve_pipeline(cfg(seed=0, img_size=256))  # mobilevit's default input size
    assert "img_size" not in native


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"epochs": 60}, "exceeds schedule_epochs"),
        ({"pretrained": "maybe"}, "allowed"),
        ({"pretrained": "file"}, "weights_file"),
        ({"cap_s": 0.0}, "cap_s"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_run_settings_raise_before_training(kw, match):
    with pytest.raises(FinetuneConfigError, match=match):
        resolve_pipeline(cfg(**kw))


def test_run_id_of_matches_the_store_rule(tiny_dataset):
    c = cfg(dataset=str(tiny_dataset), seed=5, pretrained="none")
    model, hps = resolve_pipeline(c)
    assert run_id_of(c) == make_run_id("micro", "tiny", pipeline_id(model, hps), 5)


def test_missing_dataset_is_a_file_not_found_error(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        run_id_of(cfg(dataset=str(tmp_path / "nope")))
    assert issubclass(DatasetNotFoundError, FileNotFoundError)
