"""The base train recipe of a run (crop scale, horizontal flip, colour jitter) and what a dataset tolerates.

timm's ImageNet recipe (RandomResizedCrop scale 0.08-1, flip 0.5, ColorJitter 0.4) is the default, as in
the reference, for real Meta-Album data. A dataset may declare in its info.json what its images
tolerate (``tolerates``: no flip for characters and digits, a larger smallest crop for small objects);
the default recipe is then clipped to that, and an explicit recipe that breaks it is refused before
any training. The recipe is a property of the pipeline: stored in the runs table, and part of the
pipeline id when it differs from the ImageNet recipe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metagen.datasets.kinds.base import Tolerance
from metagen.finetune.errors import FinetuneConfigError
from metagen.store.schema import IMAGENET_RECIPE, RECIPE


def resolve_recipe(
    given: Mapping[str, float | None], tolerance: Tolerance, dataset: str = "the dataset"
) -> dict[str, float]:
    """The run's recipe ``{crop_scale_min, hflip, color_jitter}``.

    Args:
        given: values asked for explicitly (``None`` = the ImageNet recipe's value within ``tolerance``).
        tolerance: what the dataset's images tolerate.
        dataset: named in errors.

    Raises:
        FinetuneConfigError: a value out of range, or one the dataset declares it does not tolerate.
    """
    unknown = sorted(set(given) - set(RECIPE))
    if unknown:
        raise FinetuneConfigError(f"unknown recipe key(s) {unknown}; known: {list(RECIPE)}")
    crop, flip, jitter = (given.get(k) for k in RECIPE)
    recipe = {
        "crop_scale_min": float(crop) if crop is not None else max(IMAGENET_RECIPE["crop_scale_min"],
                                                                     tolerance.min_crop_scale),
        "hflip": float(flip) if flip is not None else (IMAGENET_RECIPE["hflip"] if tolerance.hflip else 0.0),
        "color_jitter": float(jitter) if jitter is not None else min(IMAGENET_RECIPE["color_jitter"],
                                                                     tolerance.color_jitter),
    }  # fmt: skip
    if not 0 < recipe["crop_scale_min"] <= 1:
        raise FinetuneConfigError(f"crop_scale_min={recipe['crop_scale_min']} must be in (0, 1]")
    if not 0 <= recipe["hflip"] <= 1:
        raise FinetuneConfigError(f"hflip={recipe['hflip']} must be a probability in [0, 1]")
    if recipe["color_jitter"] < 0:
        raise FinetuneConfigError(f"color_jitter={recipe['color_jitter']} must be >= 0")
    declared = f"{dataset} declares in its info.json 'tolerates'"
    if recipe["hflip"] > 0 and not tolerance.hflip:
        raise FinetuneConfigError(f"hflip={recipe['hflip']}: {declared} that its images must not be flipped; "
                                  "set hflip=0 or leave it unset")  # fmt: skip
    if recipe["crop_scale_min"] < tolerance.min_crop_scale:
        raise FinetuneConfigError(
            f"crop_scale_min={recipe['crop_scale_min']}: {declared} min_crop_scale={tolerance.min_crop_scale}; "
            "use at least that or leave it unset"
        )
    if recipe["color_jitter"] > tolerance.color_jitter:
        raise FinetuneConfigError(
            f"color_jitter={recipe['color_jitter']}: {declared} color_jitter={tolerance.color_jitter}; "
            "use at most that or leave it unset"
        )
    return recipe


def recipe_extras(recipe: Mapping[str, float]) -> dict[str, Any]:
    """The recipe values that join the pipeline id: those that differ from the ImageNet recipe."""
    return {k: float(recipe[k]) for k in RECIPE if float(recipe[k]) != IMAGENET_RECIPE[k]}


def recipe_of(hps: Mapping[str, Any]) -> dict[str, float]:
    """The full recipe of a resolved pipeline (its extras over the ImageNet recipe)."""
    return {k: float(hps.get(k, IMAGENET_RECIPE[k])) for k in RECIPE}
