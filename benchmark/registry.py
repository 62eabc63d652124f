"""Every benchmark method by name, imported only when used (``import benchmark`` never imports torch).

A method is a factory ``factory(view, seed, context, **options) -> Optimizer``; its :class:`MethodSpec`
names it as ``"module:attr"`` plus the options that make a registered variant differ from the factory's
defaults (``quicktune-M``: ``meta_learn=False``). The defaults themselves live once, in the factory's
signature; :func:`method_options` reads them from there for ``run.json``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from benchmark.protocol import MetaContext, Optimizer, SearchView

Factory = Callable[..., Optimizer]


@dataclass(frozen=True)
class MethodSpec:
    """How to build a method.

    Attributes:
        target: ``"module:attr"`` of the factory (a class or a function).
        options: the variant's keyword options where they differ from the factory's defaults (callers may
            override them).
        needs_context: it meta-learns and needs a :class:`~benchmark.protocol.MetaContext`.
        needs_torch: importing it imports torch (kept out of the torch-free core and its tests).
        check: ``"module:attr"`` of ``check(view, options)``, which raises ``ValueError`` for a task the method
            cannot run on (e.g. a store without the runs it picks); ``benchmark.run`` calls it on every task of a
            run before any cell starts.
        requires: optional packages (top-level import names) it needs beyond the core and torch; :meth:`load`
            fails naming them (and :attr:`install`) when one is missing.
        install: how to install :attr:`requires`.
        expand: ``"module:attr"`` of ``expand(options) -> options``, which spells out option values that stand
            for others (a schedule preset: its fields) for :func:`method_options`, so that ``run.json`` records
            what a run used.
    """

    target: str
    options: Mapping[str, Any] = field(default_factory=dict)
    needs_context: bool = False
    needs_torch: bool = False
    check: str | None = None
    requires: tuple[str, ...] = ()
    install: str = ""
    expand: str | None = None

    def missing(self) -> list[str]:
        """The packages of :attr:`requires` that cannot be imported here."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def load(self) -> Factory:
        """Imports the factory (ImportError naming the missing optional packages and how to install them)."""
        missing = self.missing()
        if missing:
            raise ImportError(f"method factory '{self.target}' needs the optional package(s) {missing}: {self.install}")
        return _import(self.target)

    def load_check(self) -> Callable[[SearchView, Mapping[str, Any]], None] | None:
        """Imports the task check (``None`` if the method runs on every task)."""
        return None if self.check is None else _import(self.check)


def _import(target: str) -> Any:
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ImportError(f"cannot import method factory '{target}': {e}") from e


_QT = "benchmark.methods.quicktune:make_quicktune"
_SCHEDULE = "benchmark.methods.graybox_bo:expand_schedule"
_FB = "benchmark.methods.baselines:FrozenBackbone"
_FB_CHECK = "benchmark.methods.baselines:check_strategy_runs"
DEHB_INSTALL = "pip install -e '.[dehb]' && pip install --no-deps dehb==0.1.2 (scripts/setup.sh does both)"

METHODS: dict[str, MethodSpec] = {
    "random_search": MethodSpec("benchmark.methods.random_search:RandomSearch"),
    "hyperband": MethodSpec("benchmark.methods.hyperband:Hyperband"),
    "asha": MethodSpec("benchmark.methods.asha:ASHA"),
    "bohb": MethodSpec("benchmark.methods.bohb:BOHB"),
    "dehb": MethodSpec("benchmark.methods.dehb_tabular:DEHB", requires=("dehb",), install=DEHB_INSTALL),
    "default_model": MethodSpec("benchmark.methods.baselines:DefaultModel"),
    "best_on_average": MethodSpec("benchmark.methods.baselines:BestOnAverage", needs_context=True),
    "linear_probe": MethodSpec(_FB, {"strategy": "linear_probe"}, check=_FB_CHECK),
    "lora": MethodSpec(_FB, {"strategy": "lora"}, check=_FB_CHECK),
    "dyhpo": MethodSpec("benchmark.methods.dyhpo:DyHPO", needs_torch=True, expand=_SCHEDULE),
    "gp": MethodSpec("benchmark.methods.gp:make_gp", needs_torch=True, expand=_SCHEDULE),
    "quicktune": MethodSpec(_QT, {}, needs_context=True, needs_torch=True, expand=_SCHEDULE),
    "quicktune-M": MethodSpec(_QT, {"meta_learn": False}, needs_context=False, needs_torch=True, expand=_SCHEDULE),
    "quicktune-C": MethodSpec(_QT, {"cost_aware": False}, needs_context=True, needs_torch=True, expand=_SCHEDULE),
    "quicktune-G": MethodSpec(_QT, {"gray_box": False}, needs_context=True, needs_torch=True, expand=_SCHEDULE),
}
"""The registered methods; ``quicktune-X`` is Quick-Tune without component X (M: meta-learning,
C: cost-awareness, G: gray-box learning curves); ``gp`` is plain black-box GP-BO (QT -M -C -G, the paper's GP);
``dehb`` drives the optional ``dehb`` library; ``linear_probe`` and ``lora`` are the frozen-backbone baselines of
the paper's Exp. 5 (on stores that hold such runs, e.g. of search space ``exp5``)."""


class UnknownOptionError(ValueError):
    """An option a method's factory does not take (e.g. a misspelling such as ``etaa``)."""


class UnknownMethodError(KeyError):
    """A method name that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0])


def spec(name: str) -> MethodSpec:
    """The spec of a registered method; :class:`UnknownMethodError` listing the registered names otherwise."""
    if name not in METHODS:
        raise UnknownMethodError(
            f"unknown method '{name}'; registered methods: {sorted(METHODS)} (a variant of one under its own name "
            "is declared in the run config: variants.NAME.method, variants.NAME.options)"
        )
    return METHODS[name]


def method_names(needs_torch: bool | None = None) -> list[str]:
    """Registered names, optionally only those that do (``True``) or do not (``False``) need torch."""
    return [n for n, s in METHODS.items() if needs_torch is None or s.needs_torch == needs_torch]


_POSITIONAL = ("view", "seed", "context")
"""The factory arguments every method gets from the runner; never options."""


def accepted_options(name: str) -> list[str]:
    """The options method ``name`` takes: its factory's named parameters (not ``view``, ``seed``, ``context``;
    a factory's ``**options`` only forwards to its base class, which takes none of its own)."""
    params = inspect.signature(spec(name).load()).parameters.values()
    return sorted(
        p.name for p in params if p.name not in _POSITIONAL and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    )


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """:class:`UnknownOptionError`, naming the accepted options, if ``options`` holds one method ``name`` lacks."""
    accepted = accepted_options(name)
    unknown = sorted(k for k in options if k not in accepted)
    if unknown:
        raise UnknownOptionError(f"method '{name}' has no option {unknown}; its options are {accepted}")


RECORDED = (type(None), bool, int, float, str)
"""Types of the factory defaults that ``run.json`` records (settings, not objects such as a meta-model)."""


def default_options(name: str) -> dict[str, Any]:
    """The keyword defaults of method ``name``'s factory that are plain settings (:data:`RECORDED`)."""
    skip = {"view", "seed", "context"}
    return {
        k: p.default
        for k, p in inspect.signature(spec(name).load()).parameters.items()
        if k not in skip and p.default is not inspect.Parameter.empty and isinstance(p.default, RECORDED)
    }


def method_options(name: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The options a run of method ``name`` uses and records: factory defaults, the variant's, then ``overrides``
    (checked: :class:`UnknownOptionError` for an option the method does not take)."""
    check_options(name, overrides or {})
    options = {**default_options(name), **spec(name).options, **dict(overrides or {})}
    expand = spec(name).expand
    return _import(expand)(options) if expand else options


def make_optimizer(
    name: str, view: SearchView, seed: int, context: MetaContext | None = None, **options: Any
) -> Optimizer:
    """Builds method ``name`` on ``view``; ``options`` override the registered ones (checked, see
    :func:`check_options`)."""
    s = spec(name)
    check_options(name, options)
    if s.needs_context and context is None:
        raise ValueError(f"method '{name}' meta-learns and needs a MetaContext (benchmark.task.make_context)")
    return s.load()(view, seed, context, **{**s.options, **options})
