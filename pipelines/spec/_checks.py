"""The checks that need the whole file: names, topic references and the shape of the graph.

Each raises a located :class:`ConfigError`: a topic that is used but not declared, a route that
writes to a topic it reads, a route or sink that would read its own dead letters, routes that
feed each other in a cycle, one name given to two parts.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence

from ._document import Positions, YamlPath
from ._models import FileSpec, RouteSpec

__all__ = [
    "check_cycles",
    "check_dead_letter_loop",
    "check_names",
    "check_self_input",
    "check_topic",
    "item_path",
]

_SECTIONS = ("sources", "routes", "sinks")


def item_path(positions: Positions, path: YamlPath, index: int) -> YamlPath:
    """The path of item ``index`` of a one-or-many value at ``path`` (the value itself when the
    file gave one string rather than a list)."""
    item = (*path, index)
    return item if item in positions else path


def check_names(spec: FileSpec, positions: Positions) -> None:
    """No name is given to two of the file's sources, routes and sinks: each names a consumer
    group (``<pipeline>.<name>``) and a line in every report."""
    seen: dict[str, str] = {}
    for section in _SECTIONS:
        for name in getattr(spec, section):
            first = seen.get(name)
            if first is not None:
                raise positions.error(
                    f"the name {name!r} is used twice ({first}.{name} and {section}.{name}); "
                    f"sources, routes and sinks each need their own name",
                    (section, name),
                    at_key=True,
                )
            seen[name] = section


def check_topic(
    topic: str, declared: Mapping[str, object], positions: Positions, path: YamlPath
) -> None:
    """``topic``, used at ``path``, is declared under ``topics:``."""
    if topic in declared:
        return
    close = difflib.get_close_matches(topic, list(declared), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    known = ", ".join(declared) or "none"
    raise positions.error(
        f"topic {topic!r} is not declared under `topics:`; {hint}declared: {known}", path
    )


def check_self_input(
    name: str, route: RouteSpec, raw: Mapping[str, object], positions: Positions
) -> None:
    """A route never writes (``to``, ``unmatched``) to a topic it reads (its dead letters:
    :func:`check_dead_letter_loop`)."""
    base: YamlPath = ("routes", name)
    inputs = set(route.from_)
    for i, output in enumerate(route.to):
        if output.topic in inputs:
            entry = item_path(positions, (*base, "to"), i)
            written = raw.get("to")
            if isinstance(written, list) and isinstance(written[i], dict):
                entry = (*entry, "topic")
            raise positions.error(_loop(name, output.topic, "writes to"), entry)
    if route.unmatched in inputs:
        raise positions.error(
            _loop(name, route.unmatched, "sends unmatched events to"), (*base, "unmatched")
        )


def _loop(route: str, topic: str, verb: str) -> str:
    return (
        f"route {route!r} {verb} {topic!r}, which it also reads: every event would come back "
        "to it for ever; write to another topic"
    )


def check_dead_letter_loop(
    kind: str,
    name: str,
    inputs: Sequence[str],
    own: str | None,
    effective: str | None,
    stops: bool,
    positions: Positions,
) -> None:
    """A route or sink (``kind``) never sends its failed events to a topic it reads: each
    would fail again and go round for ever. ``own`` is its ``dead_letter``, ``effective`` the
    topic its failures really go to (its own, else the file's); a part that ``stops`` on
    errors sends nothing there."""
    if stops or effective is None or effective not in inputs:
        return
    base: YamlPath = (f"{kind}s", name)
    inherited = own is None
    whose = " (the file's dead_letter)" if inherited else ""
    how = f" (`dead_letter: TOPIC` on the {kind})" if inherited else ""
    raise positions.error(
        f"{kind} {name!r} sends its failed events to {effective!r}{whose}, which it also "
        f"reads: its failures would be fed back to it for ever; give it another dead_letter "
        f"topic{how}, or `on_error: stop`",
        base if inherited else (*base, "dead_letter"),
        at_key=inherited,
    )


def check_cycles(routes: Mapping[str, RouteSpec], positions: Positions) -> None:
    """No routes feed each other in a cycle (``a`` writes what ``b`` reads, ``b`` what ``a``
    reads): events would go round for ever. Dead-letter topics do not count: a route that
    retries dead letters into the pipeline's start is a pattern, not a mistake."""
    readers: dict[str, list[str]] = {}
    for name, route in routes.items():
        for topic in route.from_:
            readers.setdefault(topic, []).append(name)
    edges: dict[str, list[tuple[str, str]]] = {}
    for name, route in routes.items():
        out = [o.topic for o in route.to] + ([route.unmatched] if route.unmatched else [])
        edges[name] = [
            (topic, reader)
            for topic in dict.fromkeys(out)
            for reader in readers.get(topic, ())
            if reader != name
        ]
    cycle = _first_cycle(list(routes), edges)
    if cycle is None:
        return
    names, topics = cycle
    chain = " → ".join([*names, names[0]])
    through = ", ".join(repr(t) for t in topics)
    first, topic = names[0], topics[0]
    raise positions.error(
        f"routes {chain} form a cycle (through topics {through}): events would go round for "
        "ever; end one of them in another topic",
        _output_path(first, routes[first], topic, positions),
    )


def _output_path(name: str, route: RouteSpec, topic: str, positions: Positions) -> YamlPath:
    base: YamlPath = ("routes", name)
    for i, output in enumerate(route.to):
        if output.topic == topic:
            entry = item_path(positions, (*base, "to"), i)
            return (*entry, "topic") if (*entry, "topic") in positions else entry
    return (*base, "unmatched")


def _first_cycle(
    order: Sequence[str], edges: Mapping[str, Iterable[tuple[str, str]]]
) -> tuple[list[str], list[str]] | None:
    """The first cycle a depth-first walk in file order meets: its routes and the topics
    between them (``topics[i]`` leads from ``routes[i]`` to the next)."""
    done: set[str] = set()
    for start in order:
        if start in done:
            continue
        stack: list[tuple[str, str | None]] = []  # (route, topic that led here)
        on_stack: dict[str, int] = {}
        found = _walk(start, None, edges, stack, on_stack, done)
        if found is not None:
            return found
    return None


def _walk(
    node: str,
    via: str | None,
    edges: Mapping[str, Iterable[tuple[str, str]]],
    stack: list[tuple[str, str | None]],
    on_stack: dict[str, int],
    done: set[str],
) -> tuple[list[str], list[str]] | None:
    on_stack[node] = len(stack)
    stack.append((node, via))
    for topic, target in edges.get(node, ()):
        if target in on_stack:
            loop = stack[on_stack[target] :]
            names = [route for route, _ in loop]
            topics = [t for _, t in loop[1:] if t is not None] + [topic]
            return names, topics
        if target in done:
            continue
        found = _walk(target, topic, edges, stack, on_stack, done)
        if found is not None:
            return found
    stack.pop()
    del on_stack[node]
    done.add(node)
    return None
