"""The public surface: every ``__all__`` is sorted, importable and, for the core, complete.

The modules that plugin authors and applications import (``PUBLIC_MODULES``) must list every
public class or function that they (or, for a package, their submodules) define and bind in their
namespace: anything else is private (``_name``) or not imported there. Every other public module
under ``millstream.core`` whose source assigns ``__all__`` is found when the tests are collected,
and its ``__all__`` must be sorted and importable, so a new module is guarded as soon as it
declares a surface.

"Sorted" is the order ruff's RUF022 keeps (SCREAMING_CASE, then CamelCase, then the rest, each in
natural order), so ``ruff check --fix`` and this test never disagree.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
import re
from types import ModuleType

import pytest

PUBLIC_MODULES = (
    "millstream.core",
    "millstream.core.client",
    "millstream.core.errors",
    "millstream.core.log",
    "millstream.core.record",
)


def _assigns_all(module_name: str) -> bool:
    """Whether the module's source assigns ``__all__`` at top level (read, not imported)."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return False
    with open(spec.origin, encoding="utf-8") as source:
        tree = ast.parse(source.read(), spec.origin)
    for node in tree.body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign | ast.AugAssign)
            else []
        )
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return True
    return False


def _modules_to_check() -> list[str]:
    core = importlib.import_module("millstream.core")
    found = set(PUBLIC_MODULES)
    for info in pkgutil.walk_packages(core.__path__, "millstream.core.", onerror=lambda _: None):
        parts = info.name.split(".")
        if any(part.startswith("_") for part in parts):
            continue
        try:
            if _assigns_all(info.name):
                found.add(info.name)
        except (ImportError, SyntaxError, OSError):
            found.add(info.name)  # let the test itself report why it cannot be read
    return sorted(found)


def _isort_style_key(name: str) -> tuple[int, list[str | int]]:
    """Ruff's RUF022 order: constants, then classes, then the rest; natural order within."""
    if len(name) > 1 and name.isupper():
        category = 0
    elif name[:1].isupper():
        category = 1
    else:
        category = 2
    natural = [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
    return category, natural


def _load(module_name: str) -> tuple[ModuleType, list[str]]:
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        if module_name in PUBLIC_MODULES:
            pytest.skip(
                f"{module_name} defines no __all__ yet (being written); "
                "this test enforces it as soon as it does"
            )
        pytest.fail(f"{module_name} assigns __all__ in its source but has none once imported")
    return module, list(exported)


def _defined_here(obj: object, module_name: str) -> bool:
    owner = getattr(obj, "__module__", None) or ""
    return owner == module_name or owner.startswith(module_name + ".")


MODULES = _modules_to_check()


@pytest.mark.parametrize("module_name", MODULES)
def test_all_is_sorted_and_unique(module_name: str) -> None:
    _, exported = _load(module_name)
    assert all(isinstance(name, str) for name in exported)
    duplicates = sorted({name for name in exported if exported.count(name) > 1})
    assert not duplicates, f"{module_name}.__all__ lists these twice: {duplicates}"
    assert exported == sorted(exported, key=_isort_style_key), (
        f"{module_name}.__all__ is not in ruff's order (RUF022); `ruff check --fix` sorts it"
    )


@pytest.mark.parametrize("module_name", MODULES)
def test_all_names_are_importable(module_name: str) -> None:
    module, exported = _load(module_name)
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{module_name}.__all__ names what it does not define: {missing}"
    namespace: dict[str, object] = {}
    exec(f"from {module_name} import *", namespace)
    assert set(exported) <= namespace.keys()


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_lists_every_public_class_and_function(module_name: str) -> None:
    module, exported = _load(module_name)
    public = {
        name
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and _defined_here(obj, module_name)
    }
    unlisted = sorted(public - set(exported), key=_isort_style_key)
    assert not unlisted, (
        f"{module_name} has public names missing from __all__: {unlisted}; "
        "list them or make them private (_name)"
    )
