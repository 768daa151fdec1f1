"""docs/plugins.md documents every hook of core/hookspecs.py with its exact signature, and no
hook that does not exist."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from millstream.core import hookspecs

DOCS = Path(__file__).parent.parent / "docs" / "plugins.md"

SPECS = {
    name: function
    for name, function in vars(hookspecs).items()
    if inspect.isfunction(function) and hasattr(function, f"{hookspecs.PROJECT}_spec")
}


def signature(function: Callable[..., object]) -> str:
    """``def name(arg: type, ...) -> type:`` as written in hookspecs.py."""
    parameters = inspect.signature(function).parameters.values()
    arguments = ", ".join(f"{p.name}: {p.annotation}" for p in parameters)
    returns = inspect.signature(function).return_annotation
    return f"def {function.__name__}({arguments}) -> {returns}:"


def documented() -> dict[str, tuple[str, str]]:
    """Each ``### name`` section of the hooks: its code block's first ``def``, whitespace made
    single."""
    text = DOCS.read_text()
    hooks = text.split("\n## Hooks\n", 1)[1]
    found = {}
    for section in re.split(r"^### ", hooks, flags=re.MULTILINE)[1:]:
        name = section.split("\n", 1)[0].strip()
        match = re.search(r"```python\n(def .*?:)\n", section, re.DOTALL)
        definition = " ".join(match.group(1).split()) if match else ""
        found[name] = (definition.replace("( ", "(").replace(", )", ")"), section)
    return found


def test_the_hooks_are_the_ones_expected() -> None:
    assert set(SPECS) == {
        "register_connectors",
        "register_steps",
        "register_codecs",
        "register_commands",
        "startup",
        "shutdown",
    }


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_hook_is_documented_with_its_exact_signature(name: str) -> None:
    sections = documented()
    assert name in sections, f"docs/plugins.md has no '### {name}' section under '## Hooks'"
    definition, section = sections[name]
    assert definition == signature(SPECS[name]), f"docs/plugins.md, {name}: signature differs"
    assert len(section.split("```", 2)[2].strip()) > 40, f"{name}: no explanation"


def test_no_hook_is_documented_that_does_not_exist() -> None:
    assert set(documented()) <= set(SPECS)


def test_every_hook_spec_has_a_docstring() -> None:
    for name, function in SPECS.items():
        assert function.__doc__ and function.__doc__.strip(), name
