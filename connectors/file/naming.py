"""File names of the ``file`` sink: a path template and the files it has already made.

A template such as ``out/{topic}/{date}/part-{n}.jsonl`` names its folders with
``{topic}``, ``{partition}``, ``{date}`` (UTC, ``YYYY-MM-DD``) and ``{hour}`` (UTC, ``HH``);
its file name holds ``{n}`` once (a format spec such as ``{n:05d}`` is allowed), the file's
sequence number in its folder; a file name without it gets ``-{n}`` before its extension
(``out/archive.jsonl`` names ``out/archive-0.jsonl``, ``out/archive-1.jsonl``…).

A :class:`Slot` is the template with everything but ``n`` filled in: one file of it is open
at a time, and the next ``n`` is one more than the highest already there (finished files and
temporary ones alike), so numbering continues after a restart.

A file being written is hidden under a temporary name in the same folder, ``.<name>.tmp``
(``.part-3.jsonl.tmp`` for ``part-3.jsonl``), and renamed when it is complete.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from string import Formatter

__all__ = ["FIELDS", "PathTemplate", "Slot", "final_name", "temp_name"]

FIELDS = ("topic", "partition", "date", "hour", "n")
"""The placeholders a template may use."""


def temp_name(name: str) -> str:
    """The hidden name a file called ``name`` has while it is written."""
    return f".{name}.tmp"


def final_name(temp: str) -> str | None:
    """The name a temporary file will have once complete (None: not a temporary name)."""
    if temp.startswith(".") and temp.endswith(".tmp") and len(temp) > 5:
        return temp[1:-4]
    return None


@dataclass(frozen=True, slots=True)
class Slot:
    """One folder and file-name pattern of a template: ``prefix + n + suffix``."""

    folder: Path
    prefix: str
    spec: str
    suffix: str

    def name(self, n: int) -> str:
        """The file name with sequence number ``n``."""
        return f"{self.prefix}{format(n, self.spec)}{self.suffix}"

    def next_n(self) -> int:
        """One more than the highest ``n`` in the folder (0 when there is none)."""
        pattern = re.compile(re.escape(self.prefix) + r"(\d+)" + re.escape(self.suffix))
        highest = -1
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return 0
        for name in names:
            match = pattern.fullmatch(final_name(name) or name)
            if match:
                highest = max(highest, int(match.group(1)))
        return highest + 1


class PathTemplate:
    """A parsed path template; ValueError, saying what is valid, when it is not one."""

    def __init__(self, template: str) -> None:
        self.template = template
        folder, _, name = template.rpartition("/")
        used: set[str] = set()
        for part, where in ((folder, "folder"), (name, "file name")):
            for _literal, field, spec, conversion in Formatter().parse(part):
                if field is None:
                    continue
                if field not in FIELDS:
                    raise ValueError(
                        f"unknown placeholder {{{field}}} in {template!r}; use "
                        + ", ".join(f"{{{f}}}" for f in FIELDS)
                    )
                if conversion:
                    raise ValueError(f"placeholder {{{field}!{conversion}}}: no conversions")
                if field == "n" and where == "folder":
                    raise ValueError(f"{{n}} must be in the file name, not a folder: {template!r}")
                if field == "n" and spec:
                    format(0, spec)  # ValueError for a spec that cannot format a number
                used.add(field)
        pieces = list(Formatter().parse(name))
        count = sum(1 for p in pieces if p[1] == "n")
        if count == 0:
            name = _numbered(name)
            pieces = list(Formatter().parse(name))
        elif count > 1:
            raise ValueError(
                f"the file name holds {{n}} {count} times; once is enough: {template!r}, "
                "e.g. out/{topic}/part-{n}.jsonl"
            )
        index = next(i for i, p in enumerate(pieces) if p[1] == "n")
        self.folder = folder
        self.prefix = _join(pieces[:index]) + _escape(pieces[index][0])
        self.spec = pieces[index][2] or ""
        self.suffix = _join(pieces[index + 1 :])
        self.uses = frozenset(used - {"n"})

    def slot(self, base: Path, **values: object) -> Slot:
        """The slot for these values (``topic``, ``partition``, ``date``, ``hour``), with its
        folder made absolute against ``base``."""
        folder = Path(self.folder.format(**values)) if self.folder else Path(".")
        if not folder.is_absolute():
            folder = base / folder
        return Slot(folder, self.prefix.format(**values), self.spec, self.suffix.format(**values))

    def temp_glob(self, base: Path) -> str:
        """A glob matching every temporary file this template can have made."""
        values = {f: "*" for f in FIELDS}
        folder = _glob_escape(self.folder).format(**values) if self.folder else "."
        name = temp_name(
            _glob_escape(self.prefix).format(**values)
            + "*"
            + _glob_escape(self.suffix).format(**values)
        )
        path = Path(folder) / name
        return str(path if path.is_absolute() else base / path)


def _numbered(name: str) -> str:
    """``name`` with ``-{n}`` before its extension (after the name when it has none)."""
    dot = name.find(".", 1)
    if not name:
        raise ValueError("the path ends with a folder; give a file name, e.g. part-{n}.jsonl")
    return f"{name}-{{n}}" if dot < 0 else f"{name[:dot]}-{{n}}{name[dot:]}"


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _join(pieces: list[tuple[str, str | None, str | None, str | None]]) -> str:
    out = []
    for literal, field, spec, _conversion in pieces:
        out.append(_escape(literal))
        if field is not None:
            out.append("{" + field + (":" + spec if spec else "") + "}")
    return "".join(out)


def _glob_escape(template: str) -> str:
    """Glob wildcards in a template's literal text made literal (placeholders kept)."""
    return re.sub(r"([*?\[])", r"[\1]", template)
