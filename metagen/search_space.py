"""The pipeline search space (model + finetuning hyperparameters) loaded from ``conf/search_space``.

Sampling respects conditions: an inactive hyperparameter is absent from the sample, not
defaulted. Imports neither torch nor timm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "search_spaces"


@dataclass(frozen=True)
class ModelInfo:
    """A model of the hub: its timm name, the paper's alias, size and ImageNet top-1 (%).

    ``imagenet_top1`` is ``None`` (``null`` in the YAML) for a model whose weights are not ImageNet's
    (a card of the local hub, ``metagen.hub``).
    """

    name: str
    alias: str
    params_m: float
    imagenet_top1: float | None = None


@dataclass(frozen=True)
class Hyperparameter:
    """A categorical hyperparameter, optionally active only for some values of a parent, and its default value
    (``has_default``: the space's YAML declares ``default:``, one of ``values``)."""

    name: str
    values: tuple[Any, ...]
    parent: str | None = None
    parent_values: tuple[Any, ...] = ()
    default: Any = None
    has_default: bool = False

    def is_active(self, sample: Mapping[str, Any]) -> bool:
        """Whether this hyperparameter exists given the values sampled so far."""
        return self.parent is None or (self.parent in sample and sample[self.parent] in self.parent_values)


@dataclass(frozen=True)
class SearchSpace:
    """Models and hyperparameters of a pipeline space, in the order they are sampled."""

    name: str
    models: tuple[ModelInfo, ...]
    hyperparameters: tuple[Hyperparameter, ...]

    @classmethod
    def load(cls, name_or_path: str | Path = "v1") -> SearchSpace:
        """Load ``conf/search_spaces/<name>.yaml`` (or a YAML file path)."""
        path = Path(name_or_path)
        if not path.suffix:
            path = CONF_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in CONF_DIR.glob("*.yaml"))
            raise FileNotFoundError(f"no search space {name_or_path!r} ({path}); known: {known}")
        raw = yaml.safe_load(path.read_text())
        models = tuple(ModelInfo(**m) for m in raw["models"])
        hps: list[Hyperparameter] = []
        for hp_name, spec in raw["hyperparameters"].items():
            cond = spec.get("active_if") or {}
            if len(cond) > 1:
                raise ValueError(f"{path}: {hp_name} has more than one parent in active_if")
            parent, parent_values = next(iter(cond.items()), (None, ()))
            if parent is not None and parent not in {h.name for h in hps}:
                raise ValueError(  # sampling goes in file order: a child before its parent would never be active
                    f"{path}: {hp_name} is active_if {parent}, which must be listed before it (or does not exist)"
                )
            values = tuple(spec["values"])
            if "default" in spec and spec["default"] not in values:
                raise ValueError(
                    f"{path}: {hp_name}'s default {spec['default']!r} is not one of its values {list(values)}"
                )
            hps.append(
                Hyperparameter(hp_name, values, parent, tuple(parent_values), spec.get("default"), "default" in spec)
            )
        return cls(raw.get("name", path.stem), models, tuple(hps))

    def model(self, name: str) -> ModelInfo:
        """The model with this timm name or paper alias."""
        for m in self.models:
            if name in (m.name, m.alias, m.name.split(".")[0]):
                return m
        raise KeyError(f"unknown model {name!r}; known: {[m.name for m in self.models]}")

    def restrict(self, max_params_m: float | None = None, models: Sequence[str] | None = None) -> SearchSpace:
        """The same space over fewer models: by parameter budget and/or an explicit list."""
        keep = [m for m in self.models if max_params_m is None or m.params_m <= max_params_m]
        if models is not None:
            wanted = {self.model(n).name for n in models}
            keep = [m for m in keep if m.name in wanted]
        if not keep:
            raise ValueError("the restriction leaves no model in the hub")
        return SearchSpace(self.name, tuple(keep), self.hyperparameters)

    def default_pipeline(self, model: str) -> dict[str, Any]:
        """``{"model": ..., **active hyperparameters}`` at the space's declared defaults (``default:`` in its YAML:
        timm's ``train.py`` defaults on the space's grid, no finetuning tricks; what "default hyperparameters" means
        for the no-HPO baselines). Conditional hyperparameters the defaults leave inactive are absent.

        Raises:
            KeyError: ``model`` is not in the space.
            ValueError: an active hyperparameter declares no default.
        """
        out: dict[str, Any] = {"model": self.model(model).name}
        for hp in self.hyperparameters:
            if hp.is_active(out):
                if not hp.has_default:
                    raise ValueError(
                        f"search space {self.name!r} declares no default for {hp.name}: add `default:` to it in "
                        f"conf/search_spaces/{self.name}.yaml to train default pipelines"
                    )
                out[hp.name] = hp.default
        return out

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """One pipeline: ``{"model": ..., **active hyperparameters}``, uniform over listed values."""
        out: dict[str, Any] = {"model": self.models[rng.integers(len(self.models))].name}
        for hp in self.hyperparameters:
            if hp.is_active(out):
                out[hp.name] = hp.values[rng.integers(len(hp.values))]
        return out
