"""A local hub of pretrained weights with cards: pretraining small timm architectures on an offline
source corpus (``python -m metagen.hub pretrain``), and finding / verifying a card's weights."""

from metagen.hub.card import (
    HubCard,
    HubCardError,
    find_card,
    list_cards,
    load_card_weights,
    read_card,
    verified_weights,
)

__all__ = ["HubCard", "HubCardError", "find_card", "list_cards", "load_card_weights", "read_card", "verified_weights"]
