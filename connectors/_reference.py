"""The settings tables of docs/connectors/*.md, written from the connectors' Config models.

Each page marks a table with ``<!-- settings: NAME source -->`` (or ``sink``) and
``<!-- end settings -->`` on lines of their own; :func:`update_page` rewrites what lies between
from the connector registered under that name. Run it after changing a Config model::

    python -m millstream.connectors._reference            # every page in docs/connectors
    python -m millstream.connectors._reference PAGE ...
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from millstream.core import Sink, Source
from millstream.core.describe import settings_of, shown_default

from . import BUILTIN_CONNECTORS

__all__ = ["MARKER", "settings_table", "update_page"]

MARKER = re.compile(
    r"(<!-- settings: ([\w-]+) (source|sink) -->\n)(.*?)(<!-- end settings -->)", re.S
)
"""A marked table: the opening marker (connector name, kind), the table, the closing marker."""


def settings_table(cls: type[Source] | type[Sink]) -> str:
    """The Markdown table of a connector's settings: setting, type, default, meaning."""
    rows = ["| setting | type | default | meaning |", "|---|---|---|---|"]
    for setting in settings_of(cls.Config):
        kind = setting["type"].replace(" | ", " or ") + (" (secret)" if setting["secret"] else "")
        default = "required" if setting["required"] else f"`{shown_default(setting['default'])}`"
        meaning = setting["description"].replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{setting['name']}` | {kind} | {default} | {meaning} |")
    if len(rows) == 2:
        return "This connector has no settings.\n"
    return "\n".join(rows) + "\n"


def _connector(name: str, kind: str) -> type[Source] | type[Sink]:
    base = Source if kind == "source" else Sink
    for cls in BUILTIN_CONNECTORS:
        if cls.name == name and issubclass(cls, base):
            return cls
    known = sorted(
        {f"{c.name} {'source' if issubclass(c, Source) else 'sink'}" for c in BUILTIN_CONNECTORS}
    )
    raise LookupError(f"no built-in {name} {kind}; known: {', '.join(known)}")


def update_page(text: str) -> str:
    """``text`` with every marked settings table written anew from its connector."""

    def table(match: re.Match[str]) -> str:
        cls = _connector(match.group(2), match.group(3))
        return f"{match.group(1)}\n{settings_table(cls)}\n{match.group(5)}"

    return MARKER.sub(table, text)


def main(argv: list[str]) -> int:
    pages = [Path(a) for a in argv] or sorted(Path("docs/connectors").glob("*.md"))
    if not pages:
        print("no pages: run from the repository root or name the pages", file=sys.stderr)
        return 2
    for page in pages:
        text = page.read_text()
        try:
            new = update_page(text)
        except LookupError as exc:
            print(f"{page}: {exc}", file=sys.stderr)
            return 1
        if new != text:
            page.write_text(new)
            print(f"updated {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
