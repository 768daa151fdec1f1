"""Every built-in connector has a page in docs/connectors/ whose settings tables are the ones
its Config model gives, and the connector guide links every page."""

from __future__ import annotations

from pathlib import Path

import pytest

from millstream.connectors import BUILTIN_CONNECTORS
from millstream.connectors._reference import MARKER, update_page
from millstream.core import Source

DOCS = Path(__file__).parents[2] / "docs"
PAGES = DOCS / "connectors"
REGENERATE = "python -m millstream.connectors._reference"
CONNECTORS = sorted(
    {(cls.name, "source" if issubclass(cls, Source) else "sink") for cls in BUILTIN_CONNECTORS}
)


@pytest.mark.parametrize(("name", "kind"), CONNECTORS, ids=[f"{n}-{k}" for n, k in CONNECTORS])
def test_every_built_in_connector_has_a_settings_table(name: str, kind: str) -> None:
    page = PAGES / f"{name}.md"
    assert page.exists(), f"{name} has no page: write docs/connectors/{name}.md"
    marked = {(m.group(2), m.group(3)) for m in MARKER.finditer(page.read_text())}
    assert (name, kind) in marked, f"{page.name} has no <!-- settings: {name} {kind} --> table"


@pytest.mark.parametrize("page", sorted(PAGES.glob("*.md")), ids=lambda p: p.name)
def test_the_settings_tables_are_the_ones_the_models_give(page: Path) -> None:
    text = page.read_text()
    assert update_page(text) == text, f"{page.name}: tables out of date; run `{REGENERATE}`"


def test_a_table_lists_every_setting_with_its_meaning() -> None:
    text = (PAGES / "generator.md").read_text()
    assert "| `devices` | integer | `10` | how many devices take turns |" in text
    assert "| `count` | integer or null | `null` |" in text


def test_the_connector_guide_links_every_page() -> None:
    guide = (DOCS / "connectors.md").read_text()
    for name in sorted({name for name, _ in CONNECTORS}):
        assert f"(connectors/{name}.md)" in guide, f"docs/connectors.md does not link {name}.md"
