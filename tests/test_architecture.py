"""The import rules of docs/architecture.md: directions between packages, no cycles, a torch-free core.

Imports are read with :mod:`ast` (nothing is imported), lazy function-level imports included.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EXTRA_DIRS

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("metagen", "benchmark", "surrogates", "benchmarks")
HEAVY = ("torch", "timm", "torchvision", "gpytorch", "submitit")

LEAVES = (
    "metagen.versions",
    "metagen.slurm",
    "metagen.locks",
    "metagen.hydra_settings",
    "metagen.search_space",
    "metagen._timm",
    "metagen.hub.card",
)
"""Modules that import nothing of ours."""

APPLICATION = ("metagen.tune",)
"""Top-layer modules exempt from their package's direction rule: live tuning joins the benchmark's optimizers
(``benchmark``, ``surrogates``) and the finetuning runner (``metagen.finetune``); nothing imports them."""

FORBIDDEN: list[tuple[str, tuple[str, ...]]] = [
    ("metagen", ("benchmark", "benchmarks", "surrogates")),
    ("metagen.tune", ("benchmarks",)),
    ("surrogates", ("benchmark", "benchmarks", "metagen.finetune", "metagen.sweep", "metagen.datasets")),
    ("benchmark", ("benchmarks", "metagen.finetune", "metagen.sweep", "metagen.datasets")),
    ("metagen.store", ("metagen.finetune", "metagen.sweep", "metagen.hub", "metagen._timm")),
    ("metagen.datasets", ("metagen.finetune", "metagen.sweep", "metagen.store")),
    ("metagen.finetune", ("metagen.sweep",)),
]
"""(importer prefix, prefixes it must not import): the allowed directions of docs/architecture.md."""

TORCH_FREE = (
    "metagen.store",
    "metagen.datasets",
    "metagen.fetch",
    "metagen.sweep",
    "metagen.versions",
    "metagen.slurm",
    "metagen.locks",
    "metagen.search_space",
    "metagen.finetune.config",
    "metagen.hub.card",
    "metagen.hub.corpora",
    "benchmark",
    "surrogates.folds",
    "surrogates.encoding",
)
TORCH_ALLOWED = (
    "metagen.sweep.job",
    "benchmark.methods.dyhpo",
    "benchmark.methods.quicktune",
    "benchmark.methods.graybox_bo",
)
"""Modules under TORCH_FREE prefixes that may import a heavy package at module level (prefix match)."""


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _imports(path: Path, top_level_only: bool = False) -> Iterator[str]:
    """Absolute names a module imports (``from a import b`` yields ``a.b`` when that is a module, else ``a``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = _before_importorskip(tree.body) if top_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES]
            yield from subs or [node.module]


def _owner(imported: str) -> str:
    """The module of an imported name (``a.b.attr`` -> ``a.b``); empty if not ours."""
    while imported and imported not in MODULES:
        imported = imported.rpartition(".")[0]
    return imported


def _before_importorskip(body: list[ast.stmt]) -> list[ast.stmt]:
    """Module-level statements up to the first ``pytest.importorskip(...)`` (what runs whatever is installed)."""
    for i, stmt in enumerate(body):
        calls = [n for n in ast.walk(stmt) if isinstance(n, ast.Call)]
        if any(isinstance(c.func, ast.Attribute) and c.func.attr == "importorskip" for c in calls):
            return body[:i]
    return body


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        targets = set()
        for imported in _imports(path):
            imported = _owner(imported)  # `a.b.attr` -> module `a.b`
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


GRAPH = _graph()


def test_the_scan_sees_the_project() -> None:
    assert {"metagen.store.schema", "benchmark.replay", "surrogates.gp"} <= set(MODULES)
    assert "metagen.store.schema" in GRAPH["metagen.store.writer"]


@pytest.mark.parametrize(("importer", "forbidden"), FORBIDDEN, ids=[f[0] for f in FORBIDDEN])
def test_import_directions(importer: str, forbidden: tuple[str, ...]) -> None:
    bad = sorted(
        f"{m} -> {t}"
        for m, targets in GRAPH.items()
        if _under(m, importer) and not any(_under(m, a) and not _under(importer, a) for a in APPLICATION)
        for t in targets
        if any(_under(t, f) for f in forbidden)
    )
    assert not bad, f"imports against docs/architecture.md: {bad}"


def test_nothing_imports_the_application_layer() -> None:
    bad = sorted(f"{m} -> {t}" for m, ts in GRAPH.items() for t in ts
                 if any(_under(t, a) and not _under(m, a) for a in APPLICATION))  # fmt: skip
    assert not bad, f"the application layer {APPLICATION} is imported by: {bad}"


def test_leaf_modules_import_nothing_of_ours() -> None:
    bad = sorted(f"{m} -> {t}" for m in LEAVES if m in GRAPH for t in GRAPH[m])
    assert not bad, bad


def test_no_import_cycles() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_core_is_torch_free_at_import() -> None:
    bad = []
    for name, path in MODULES.items():
        if not any(_under(name, p) for p in TORCH_FREE) or any(_under(name, p) for p in TORCH_ALLOWED):
            continue
        heavy = {i.split(".")[0] for i in _imports(path, top_level_only=True)} & set(HEAVY)
        if heavy:
            bad.append(f"{name}: {sorted(heavy)}")
    assert not bad, f"torch-free modules importing heavy packages at module level: {bad}"


def _heavy_at_import() -> set[str]:
    """Our modules whose import imports a heavy package (directly or through our modules)."""
    top = {name: set(_imports(path, top_level_only=True)) for name, path in MODULES.items()}
    heavy = {name for name, names in top.items() if {i.split(".")[0] for i in names} & set(HEAVY)}
    while True:
        more = {name for name, names in top.items() if name not in heavy and any(_owner(i) in heavy for i in names)}
        if not more:
            return heavy
        heavy |= more


def test_tests_import_torch_only_through_importorskip() -> None:
    heavy_modules = _heavy_at_import()
    bad = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path.relative_to(ROOT / "tests").parts[0] in EXTRA_DIRS:
            continue  # not collected without its extra (tests/conftest.py)
        names = set(_imports(path, top_level_only=True))
        heavy = {i for i in names if i.split(".")[0] in HEAVY or _owner(i) in heavy_modules}
        if heavy:
            bad.append(f"{path.relative_to(ROOT)}: {sorted(heavy)}")
    assert not bad, f"import torch-based modules after `pytest.importorskip('torch')`, not at the top: {bad}"


BLOCKER = """
import importlib.abc, sys
class _NoExtras(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (core install)", name=name)
sys.meta_path.insert(0, _NoExtras())
"""


@pytest.mark.slow
def test_the_core_install_collects_and_runs_the_store_and_benchmark_tests(tmp_path: Path) -> None:
    """pytest in an environment where torch, timm, gpytorch, submitit, ... cannot be imported."""
    import os
    import subprocess
    import sys

    (tmp_path / "sitecustomize.py").write_text(BLOCKER.format(blocked=set(HEAVY) | {"sklearn", "skimage"}))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "tests/benchmark/test_run.py::" in done.stdout and "tests/store/test_writer.py::" in done.stdout
    assert "tests/finetune/" not in done.stdout  # its folder needs the metagen extra: not collected
