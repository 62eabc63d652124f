"""The hub6 search space and the committed hub/ folder it relies on."""

from __future__ import annotations

from pathlib import Path

from metagen.finetune.models import OFFLINE_PACKAGES
from metagen.hub import find_card, verified_weights
from metagen.search_space import SearchSpace

HUB = Path(__file__).resolve().parents[2] / "hub"


def test_hub6_is_cpu8s_space_over_six_pretrained_models():
    hub6, cpu8 = SearchSpace.load("hub6"), SearchSpace.load("cpu8")
    assert hub6.hyperparameters == cpu8.hyperparameters
    assert len(hub6.models) == 6
    lite = [m for m in hub6.models if m.imagenet_top1 is not None]
    assert sorted(m.name for m in lite) == sorted(OFFLINE_PACKAGES)
    for m in hub6.models:
        if m.imagenet_top1 is None:  # pretrained here: a committed card whose weights pass the hash check
            card = find_card(HUB, m.name)
            assert card is not None, f"hub/ has no card of {m.name}"
            assert verified_weights(HUB, card).is_file()
            assert card.card_id == f"{m.name}.fmnist64" and card.source["split"] == "train"
