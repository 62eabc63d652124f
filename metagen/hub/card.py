"""Hub cards: a pretrained model's weights file plus the record of how they were made.

A hub folder holds one sub-folder per card, named by its ``card_id`` (``<architecture>.<source tag>``,
e.g. ``edgenext_xx_small.fmnist64``):

* ``model.safetensors``: the timm state dict of ``architecture``, source classifier included;
* ``card.json``: what :class:`HubCard` holds (source data, recipe, epochs, source accuracy, cost,
  package versions, sha256 of the weights);
* ``card.md``: the same for people.

The portable identity of the weights is ``card:<card_id>@sha256:<first 16 hex of the sha256>``
(:meth:`HubCard.provenance`); loading checks the full hash (:func:`load_card_weights`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CARD_JSON = "card.json"
CARD_MD = "card.md"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1


class HubCardError(ValueError):
    """A hub folder or card is missing, malformed, ambiguous, or its weights fail the hash check."""


@dataclass(frozen=True)
class HubCard:
    """What a hub card records (``card.json``).

    Attributes:
        card_id: ``<architecture>.<source tag>``; also the card's folder name.
        architecture: timm architecture name (``timm.create_model(architecture)``).
        num_classes: classes of the source head stored with the weights.
        class_names: the source classes, in label order.
        source: source data: name, description, license, split, images available / per epoch, resolution.
        evaluation: held-out split the source accuracy is measured on, its size, and ``top1`` (0..1).
        recipe: optimiser, schedule, batch size, augmentation, normalisation, seed.
        epochs: epochs trained.
        history: per epoch: train loss, eval top-1, cumulated CPU and wall seconds.
        cost: ``cpu_s`` (process CPU time, all threads), ``wall_s``, ``threads``, ``hardware``.
        packages: versions of the packages that shaped the weights.
        weights_sha256: sha256 (hex) of ``model.safetensors``.
        weights_bytes: size of ``model.safetensors``.
        format_version: card format.
    """

    card_id: str
    architecture: str
    num_classes: int
    class_names: tuple[str, ...]
    source: dict[str, Any]
    evaluation: dict[str, Any]
    recipe: dict[str, Any]
    epochs: int
    history: tuple[dict[str, float], ...]
    cost: dict[str, Any]
    packages: dict[str, str]
    weights_sha256: str
    weights_bytes: int
    format_version: int = field(default=FORMAT_VERSION)

    @property
    def provenance(self) -> str:
        """``card:<card_id>@sha256:<first 16 hex of the weights' sha256>``, the runs' ``pretrained_source``."""
        return f"card:{self.card_id}@sha256:{self.weights_sha256[:16]}"

    def to_json(self) -> dict[str, Any]:
        """The card as a JSON object."""
        out = asdict(self)
        out["class_names"] = list(self.class_names)
        out["history"] = [dict(h) for h in self.history]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> HubCard:
        """Parse ``card.json``'s object; ``where`` names the file in errors."""
        try:
            card = cls(
                **{
                    **data,
                    "class_names": tuple(data["class_names"]),
                    "history": tuple(dict(h) for h in data["history"]),
                }
            )
        except (KeyError, TypeError) as e:
            raise HubCardError(
                f"{where} is not a hub card ({e}); rewrite it with `python -m metagen.hub pretrain`"
            ) from e
        if card.format_version != FORMAT_VERSION:
            raise HubCardError(f"{where} has card format {card.format_version}; this metagen reads {FORMAT_VERSION}")
        return card


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def card_markdown(card: HubCard) -> str:
    """``card.md``: the card for people."""
    src, ev, rc, cost = card.source, card.evaluation, card.recipe, card.cost
    lines = [
        f"# {card.card_id}",
        "",
        f"`{card.architecture}` (timm) pretrained from random initialisation on {src['name']} "
        f"({src['split']} split), {card.num_classes} classes, at {src['resolution']} px.",
        "",
        f"- Provenance id: `{card.provenance}`",
        f"- Weights: `{WEIGHTS_FILE}`, {card.weights_bytes:,} bytes, sha256 `{card.weights_sha256}`",
        f"- Source data: {src['description']}; license: {src['license']}",
        f"- Training images: {src['images_per_epoch']:,} per epoch, drawn afresh each epoch from the "
        f"{src['images_available']:,} images of the {src['split']} split ({_epochs(card.epochs)}, "
        f"{card.epochs * src['images_per_epoch']:,} images seen)",
        f"- Classes: {', '.join(card.class_names)}",
        f"- Input: {src['input']}",
        f"- Source accuracy: top-1 **{ev['top1']:.4f}** on the {ev['images']:,} images of the {ev['split']} split",
        f"- Recipe: {rc['optimizer']} (lr {rc['lr']}, weight decay {rc['weight_decay']}, betas {rc['betas']}), "
        f"{rc['schedule']}, batch {rc['batch_size']}, label smoothing {rc['label_smoothing']}, "
        f"augmentation: {rc['augmentation']}; normalisation mean {rc['mean']} std {rc['std']}; seed {rc['seed']}",
        f"- Cost: {cost['cpu_s']:.0f} CPU-seconds ({cost['wall_s']:.0f} s wall) on {cost['hardware']}, "
        f"{cost['threads']} torch thread(s)",
        f"- Packages: {', '.join(f'{k} {v}' for k, v in sorted(card.packages.items()))}",
        "",
        "| epoch | train loss | top-1 | CPU s | wall s |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {int(h['epoch'])} | {h['train_loss']:.4f} | {h['top1']:.4f} | {h['cpu_s']:.0f} | {h['wall_s']:.0f} |"
        for h in card.history
    ]
    return "\n".join(lines) + "\n"


def write_card(folder: Path, card: HubCard) -> None:
    """Write ``card.json`` and ``card.md`` into ``folder`` (which holds the weights already)."""
    weights = folder / WEIGHTS_FILE
    if not weights.is_file() or sha256_file(weights) != card.weights_sha256:
        raise HubCardError(f"{weights} is missing or does not match the card's sha256; write the weights first")
    (folder / CARD_JSON).write_text(json.dumps(card.to_json(), indent=2) + "\n")
    (folder / CARD_MD).write_text(card_markdown(card))


def read_card(folder: Path) -> HubCard:
    """The card in ``folder``.

    Raises:
        HubCardError: no ``card.json`` there, or it is not a card, or its id differs from the folder name.
    """
    path = Path(folder) / CARD_JSON
    if not path.is_file():
        raise HubCardError(f"{path} does not exist; a hub card folder holds {CARD_JSON} and {WEIGHTS_FILE}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise HubCardError(f"{path} is not valid JSON ({e})") from e
    card = HubCard.from_json(data, str(path))
    if card.card_id != path.parent.name:
        raise HubCardError(f"{path} is card {card.card_id!r} but lies in folder {path.parent.name!r}; rename one")
    return card


def list_cards(hub_dir: Path) -> list[HubCard]:
    """Every card in a hub folder, sorted by id.

    Raises:
        HubCardError: ``hub_dir`` is not a folder, or a card in it is malformed.
    """
    hub = Path(hub_dir)
    if not hub.is_dir():
        raise HubCardError(f"hub folder {hub} does not exist; create cards with `python -m metagen.hub pretrain`")
    return [read_card(d) for d in sorted(hub.iterdir()) if (d / CARD_JSON).is_file()]


def find_card(hub_dir: Path, architecture: str) -> HubCard | None:
    """The card for a timm architecture in a hub folder, or ``None`` when it has none.

    Raises:
        HubCardError: the folder holds several cards of the architecture (keep one per hub folder).
    """
    found = [c for c in list_cards(hub_dir) if c.architecture == architecture]
    if len(found) > 1:
        ids = ", ".join(c.card_id for c in found)
        raise HubCardError(f"hub folder {hub_dir} holds several cards of {architecture} ({ids}); keep one")
    return found[0] if found else None


def verified_weights(hub_dir: Path, card: HubCard) -> Path:
    """The weights file of a card in a hub folder, after checking its sha256 against the card.

    Raises:
        HubCardError: the weights file is missing or its hash differs from the card's.
    """
    path = Path(hub_dir) / card.card_id / WEIGHTS_FILE
    if not path.is_file():
        raise HubCardError(f"{path} is missing; card {card.card_id} cannot be loaded (re-run its pretraining)")
    digest = sha256_file(path)
    if digest != card.weights_sha256:
        raise HubCardError(
            f"{path} has sha256 {digest[:16]}..., but card {card.card_id} records {card.weights_sha256[:16]}...; "
            "the weights were changed or corrupted: restore them (git checkout) or re-run the pretraining"
        )
    return path


def load_card_weights(hub_dir: Path, card: HubCard) -> dict[str, Any]:
    """The state dict of a card, after the hash check of :func:`verified_weights`."""
    from safetensors.torch import load_file

    return load_file(str(verified_weights(hub_dir, card)))
