"""The hub6 search space and the committed hub/ folder it relies on."""

from __future__ import annotations

from pathlib import Path

from metagen.finetune.models import OFFLINE_PACKAGES
from metagen.hub import find_card, verified_weights
from metagen.search_space import SearchSpace

HUB = Path(__file__).resolve().parents[2] / "hub"


def test_hub6_is_cpu8s_space_scaled_to_20_epochs_over_six_pretrained_models():
    hub6, cpu8 = SearchSpace.load("hub6"), SearchSpace.load("cpu8")
    changed = {"lr", "warmup_epochs", "decay_epochs"}  # the documented deviations of hub6.yaml
    assert [h.name for h in hub6.hyperparameters] == [h.name for h in cpu8.hyperparameters]
    assert [h for h in hub6.hyperparameters if h.name not in changed] == [
        h for h in cpu8.hyperparameters if h.name not in changed
    ]
    values = {h.name: h.values for h in hub6.hyperparameters}
    assert min(values["lr"]) == 1e-4 and max(values["warmup_epochs"]) == 4 and max(values["decay_epochs"]) == 8
    assert len(hub6.models) == 6
    lite = [m for m in hub6.models if m.imagenet_top1 is not None]
    assert sorted(m.name for m in lite) == sorted(OFFLINE_PACKAGES)
    for m in hub6.models:
        if m.imagenet_top1 is None:  # pretrained here: a committed card whose weights pass the hash check
            card = find_card(HUB, m.name)
            assert card is not None, f"hub/ has no card of {m.name}"
            assert verified_weights(HUB, card).is_file()
            assert card.card_id == f"{m.name}.fmglyph64" and card.source["split"] == "train + train"
            assert card.num_classes == 172 and card.recipe["augmentation"].count("flip") == 1  # no flips
