"""Hub cards: round trip, portable provenance, lookup by architecture, hash check."""

from __future__ import annotations

import json
import re

import pytest
import torch

from metagen.hub import HubCardError, find_card, list_cards, load_card_weights, read_card
from metagen.hub.__main__ import main
from metagen.hub.card import WEIGHTS_FILE
from tests.hub.cards import write_tiny_card


def test_card_round_trip_and_provenance(tmp_path):
    card = write_tiny_card(tmp_path)
    assert read_card(tmp_path / card.card_id) == card
    assert list_cards(tmp_path) == [card]
    assert re.fullmatch(r"card:edgenext_xx_small\.tiny32@sha256:[0-9a-f]{16}", card.provenance)
    assert card.provenance.endswith(card.weights_sha256[:16])
    md = (tmp_path / card.card_id / "card.md").read_text()
    assert card.weights_sha256 in md and "top-1 **0.2500**" in md
    sd = load_card_weights(tmp_path, card)
    assert sd["head.fc.weight"].shape == (3, 168)


def test_find_card_by_architecture(tmp_path):
    card = write_tiny_card(tmp_path)
    assert find_card(tmp_path, "edgenext_xx_small") == card
    assert find_card(tmp_path, "mobilevit_xxs") is None
    with pytest.raises(HubCardError, match="does not exist"):
        find_card(tmp_path / "nope", "edgenext_xx_small")


def test_two_cards_of_one_architecture_are_ambiguous(tmp_path):
    card = write_tiny_card(tmp_path)
    other = tmp_path / "edgenext_xx_small.other"
    other.mkdir()
    (other / WEIGHTS_FILE).write_bytes((tmp_path / card.card_id / WEIGHTS_FILE).read_bytes())
    data = json.loads((tmp_path / card.card_id / "card.json").read_text())
    (other / "card.json").write_text(json.dumps({**data, "card_id": "edgenext_xx_small.other"}))
    with pytest.raises(HubCardError, match="several cards of edgenext_xx_small"):
        find_card(tmp_path, "edgenext_xx_small")


def test_changed_weights_fail_the_hash_check(tmp_path):
    card = write_tiny_card(tmp_path)
    from safetensors.torch import load_file, save_file

    path = tmp_path / card.card_id / WEIGHTS_FILE
    sd = load_file(str(path))
    sd["head.fc.bias"] = sd["head.fc.bias"] + torch.ones_like(sd["head.fc.bias"])
    save_file(sd, str(path))
    with pytest.raises(HubCardError, match=f"card {card.card_id} records {card.weights_sha256[:16]}"):
        load_card_weights(tmp_path, card)
    path.unlink()
    with pytest.raises(HubCardError, match="is missing"):
        load_card_weights(tmp_path, card)


def test_malformed_or_misplaced_cards_are_errors(tmp_path):
    card = write_tiny_card(tmp_path)
    moved = tmp_path / "renamed"
    (tmp_path / card.card_id).rename(moved)
    with pytest.raises(HubCardError, match="lies in folder 'renamed'"):
        read_card(moved)
    (moved / "card.json").write_text('{"card_id": "renamed"}')
    with pytest.raises(HubCardError, match="is not a hub card"):
        read_card(moved)


def test_list_command(tmp_path, capsys):
    card = write_tiny_card(tmp_path)
    assert main(["list", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{card.card_id}\t{card.provenance}\t") and "top-1 0.2500" in out
    assert main(["list", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
