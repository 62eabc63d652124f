"""Weights from a local hub folder (metagen.hub cards): resolution order, loading, provenance, hash check."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from metagen.finetune import FinetuneConfigError, WeightsUnavailableError, finetune
from metagen.finetune.models import WeightsSource, build_model, classifier, resolve_weights
from metagen.hub.card import WEIGHTS_FILE
from metagen.store import StoreReader
from tests.finetune.conftest import FAST_MODEL, make_cfg
from tests.hub.cards import write_tiny_card


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", "/nonexistent-cache")


def test_auto_takes_the_card_and_loads_its_weights_and_source_head(tmp_path, offline):
    card = write_tiny_card(tmp_path / "hub", num_classes=3)
    source = resolve_weights("edgenext_xx_small.in1k", "auto", None, str(tmp_path / "hub"))
    assert source.kind == "card" and source.provenance == card.provenance
    built = build_model("edgenext_xx_small.in1k", 5, weights=source, img_size=32)
    ref = load_file(str(tmp_path / "hub" / card.card_id / WEIGHTS_FILE))
    for k, v in built.model.state_dict().items():
        if not k.startswith("head.fc"):
            assert torch.equal(v, ref[k]), k
    head = classifier(built.model)
    assert isinstance(head, torch.nn.Linear) and head.out_features == 5
    assert isinstance(built.source_head, torch.nn.Linear)
    assert torch.equal(built.source_head.weight, ref["head.fc.weight"])  # the 3-class source head, for Co-Tuning


def test_other_weight_sources_win_or_the_card_is_skipped(tmp_path, offline):
    write_tiny_card(tmp_path / "hub")
    hub = str(tmp_path / "hub")
    assert resolve_weights("edgenext_xx_small.in1k", "none", None, hub) == WeightsSource("random")
    with pytest.raises(WeightsUnavailableError, match="HF_HUB_OFFLINE"):  # pretrained=hub: the Hugging Face hub only
        resolve_weights("edgenext_xx_small.in1k", "hub", None, hub)
    with pytest.raises(WeightsUnavailableError, match="has no card of dla46x_c"):
        resolve_weights("dla46x_c.in1k", "auto", None, hub)
    assert resolve_weights("efficientnet_lite0.ra_in1k", "auto", None, hub).kind == "package"


def test_changed_card_weights_are_refused_before_training(tmp_path, offline):
    card = write_tiny_card(tmp_path / "hub")
    path = tmp_path / "hub" / card.card_id / WEIGHTS_FILE
    sd = load_file(str(path))
    sd["stem.0.bias"] = torch.zeros_like(sd["stem.0.bias"]) + 1.0
    save_file(sd, str(path))
    with pytest.raises(WeightsUnavailableError, match=rf"records {card.weights_sha256[:16]}.*git checkout"):
        resolve_weights("edgenext_xx_small.in1k", "auto", None, str(tmp_path / "hub"))


def test_a_run_from_a_card_records_the_portable_provenance(tiny_dataset, store, tmp_path, offline):
    card = write_tiny_card(tmp_path / "hub", num_classes=3)
    cfg = make_cfg(tiny_dataset, store, tmp_path, model=FAST_MODEL, epochs=1, pretrained="auto",
                   hub_dir=str(tmp_path / "hub"), hp={"cotuning_reg": 1.0})  # fmt: skip
    result = finetune(cfg)
    assert result.status == "ok", result.message
    run = StoreReader(store).scan_runs().collect().row(0, named=True)
    assert run["pretrained_source"] == card.provenance and "/" not in run["pretrained_source"]


def test_a_missing_hub_dir_is_a_config_error(tiny_dataset, store, tmp_path):
    cfg = make_cfg(tiny_dataset, store, tmp_path, pretrained="auto", hub_dir=str(tmp_path / "nope"))
    with pytest.raises(FinetuneConfigError, match=r"hub_dir=.*nope is not a folder"):
        finetune(cfg)
