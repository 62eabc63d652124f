"""``--help`` of the Hydra command lines: what a user can set, generated from the code that reads it.

Hydra's own help lists config groups and the composed YAML, not the choices. These helpers list the
keys of a config dataclass with their defaults and meanings (from its docstring's ``Attributes:`` or
the ``#`` comment above each field), the hyperparameters and models of a search space, the dataset
versions and the dataset kinds, and the exit codes. Imports neither torch nor timm.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import textwrap
from pathlib import Path
from typing import Any

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
WIDTH = 110

EXIT_CODES = (
    "Exit codes: 0 done; 1 problems found or runs/cells failed; 2 bad input (unknown key, wrong value, missing or "
    "unwritable store, ...), nothing done; 130 interrupted (rerun to resume)."
)


def wants_help(argv: list[str]) -> bool:
    """Whether the command line asks for help (``-h`` / ``--help``; ``--hydra-help`` stays Hydra's)."""
    return any(a in ("-h", "--help") for a in argv)


def _docstring_attributes(cls: type) -> dict[str, str]:
    doc = inspect.getdoc(cls) or ""
    if "Attributes:" not in doc:
        return {}
    out: dict[str, str] = {}
    name = None
    for line in doc.split("Attributes:", 1)[1].splitlines():
        m = re.match(r"^    (\w+): (.*)$", line)
        if m:
            name = m.group(1)
            out[name] = m.group(2).strip()
        elif name and line.startswith("        "):
            out[name] += " " + line.strip()
        elif line.strip():
            break
    return out


def _source_comments(cls: type) -> dict[str, str]:
    """Field meanings written as ``# ...`` comments above (or after) the field in the class body."""
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    pending: list[str] = []
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("# ").strip())
            continue
        m = re.match(r"^\s+(\w+): [^=]+?(?:=.*?)?(?:#\s*(.*))?$", line)
        if m and not stripped.startswith(("def ", "@")):
            text = " ".join([*pending, m.group(2) or ""]).strip()
            if text:
                out[m.group(1)] = text
        pending = []
    return out


def field_docs(cls: type) -> dict[str, str]:
    """What each field of a config dataclass means (docstring ``Attributes:``, else the field's comment),
    inherited fields documented where they are declared (e.g. ``TrainingSettings`` for ``SweepConfig``)."""
    out: dict[str, str] = {}
    for c in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):
        own = c.__dict__.get("__doc__") or ""
        attributes = _docstring_attributes(c) if "Attributes:" in own else {}
        out |= {**_source_comments(c), **attributes}
    return out


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value: Any = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "???"
    if value == "???":
        return "???"
    if dataclasses.is_dataclass(value):
        return "{...}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value).replace(" ", "").replace("'", "") if isinstance(value, list | dict) else str(value)


def entry(head: str, text: str, indent: int = 28) -> list[str]:
    """``  head   text`` with ``text`` wrapped in a column (on the next line when ``head`` is long)."""
    pad = " " * indent
    first = f"  {head}".ljust(indent - 1) + " "
    if len(first) > indent:
        return [first.rstrip(), *textwrap.wrap(text, WIDTH, initial_indent=pad, subsequent_indent=pad)]
    return textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=pad) or [first.rstrip()]


def keys_section(cls: type, prefix: str = "", skip: tuple[str, ...] = ()) -> list[str]:
    """One entry per field: ``KEY=DEFAULT  meaning`` (nested dataclasses are listed by the caller)."""
    docs = field_docs(cls)
    lines: list[str] = []
    for f in dataclasses.fields(cls):
        if f.name in skip or f.name.startswith("_"):
            continue
        lines += entry(f"{prefix}{f.name}={_default(f)}", docs.get(f.name, ""))
    return lines


def _fmt_value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    return f"'{v}'" if isinstance(v, str) and " " in v else str(v)


def hyperparameters_section(space_name: str = "v1") -> list[str]:
    """``hp.NAME: values`` for every hyperparameter of a search space, with the condition that activates it."""
    from metagen.search_space import SearchSpace

    space = SearchSpace.load(space_name)
    lines = []
    for hp in space.hyperparameters:
        values = ", ".join(_fmt_value(v) for v in hp.values)
        when = f" (only when {hp.parent} in {[_fmt_value(v) for v in hp.parent_values]})" if hp.parent else ""
        lines += entry(f"hp.{hp.name}", values + when)
    return lines


def models_section(space_name: str = "v1") -> list[str]:
    """The models of a search space: timm name (alias, million parameters)."""
    from metagen.search_space import SearchSpace

    space = SearchSpace.load(space_name)
    items = [f"{m.alias} ({m.name}, {m.params_m:g}M)" if m.alias != m.name else f"{m.name} ({m.params_m:g}M)"
             for m in space.models]  # fmt: skip
    return textwrap.wrap(", ".join(items), WIDTH, initial_indent="  ", subsequent_indent="  ")


def search_spaces() -> list[str]:
    """Names of the search spaces under ``conf/search_spaces``."""
    return sorted(p.stem for p in (CONF_DIR / "search_spaces").glob("*.yaml"))


def versions_section() -> list[str]:
    """``version=NAME``: the presets of ``conf/version`` with their epochs and per-run cap (their numbers
    come from the version table, :mod:`metagen.versions`, through the ``version_table`` resolver)."""
    from omegaconf import OmegaConf

    from metagen.versions import register_resolver

    register_resolver()
    lines = []
    for p in sorted((CONF_DIR / "version").glob("*.yaml")):
        d = OmegaConf.to_container(OmegaConf.load(p), resolve=True)
        assert isinstance(d, dict)
        lines.append(f"  {p.stem:<10} epochs={d.get('epochs')} cap_s={d.get('cap_s')} "
                     f"schedule_epochs={d.get('schedule_epochs')}")  # fmt: skip
    return lines


def dataset_kinds_section() -> list[str]:
    """The dataset kinds of ``python -m metagen.datasets make KIND OUT`` and whether each is available here."""
    from metagen.datasets.kinds import KIND_SPECS

    lines = []
    for spec in KIND_SPECS.values():
        reason = spec.unavailable()
        lines += entry(spec.name, spec.description + ("" if reason is None else f" [NOT AVAILABLE here: {reason}]"))
    return lines


def render(usage: str, summary: str, sections: list[tuple[str, list[str]]]) -> str:
    """The help text: usage, summary, titled sections, the exit codes and Hydra's own options."""
    out = [f"usage: {usage}", "", *textwrap.wrap(summary, WIDTH), ""]
    for title, lines in sections:
        out += [title, *lines, ""]
    out += [
        *textwrap.wrap(EXIT_CODES, WIDTH),
        "Hydra: --cfg job prints the composed config; --hydra-help lists Hydra's own options.",
    ]
    return "\n".join(out)
