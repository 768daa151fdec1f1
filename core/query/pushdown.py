"""What a query needs from each topic, read from DuckDB's own parse of the SQL.

DuckDB serialises a statement's syntax tree as JSON (``json_serialize_sql``). From it
:func:`analyse` learns, for every topic the query names:

- which record columns it uses (a topic's unused columns are not decoded);
- the bounds its ``WHERE`` puts on ``partition``, ``record_offset`` and ``timestamp``, which
  decide the partitions, segments and batches that are read (see :mod:`.scan`);
- whether the query aggregates (a live tail, ``--follow``, needs one that does not).

Bounds come only from simple comparisons of one of those columns with a constant (``=``,
``<``, ``<=``, ``>``, ``>=``, ``BETWEEN``, ``IN``), AND-ed at the top of the ``WHERE`` of the
``SELECT`` whose ``FROM`` names the topic, when the query names the topic once. Such a
comparison is false for a row the scan leaves out, and false or NULL for a NULL, so reading
less cannot change the answer, joins (outer ones too) included; and DuckDB applies the whole
``WHERE`` to every row anyway. Anything else (OR, functions of the columns, a topic named twice)
reads the topic whole: slower, never wrong. The constants are computed by DuckDB itself
(``now() - INTERVAL 1 HOUR``, ``'2026-01-01'``, ``DATE '2026-01-01' + 1``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..log import MAX_PARTITIONS
from .columns import COLUMNS
from .scan import ScanBounds

__all__ = ["QueryShape", "TopicNeeds", "analyse"]

VIEW_COLUMNS = ("topic", *COLUMNS)
_BOUND_COLUMNS = ("partition", "record_offset", "timestamp")

_COMPARISONS = {
    "COMPARE_EQUAL": "=",
    "COMPARE_GREATERTHAN": ">",
    "COMPARE_GREATERTHANOREQUALTO": ">=",
    "COMPARE_LESSTHAN": "<",
    "COMPARE_LESSTHANOREQUALTO": "<=",
}
_MIRROR = {"=": "=", ">": "<", ">=": "<=", "<": ">", "<=": ">="}

Node = dict[str, Any]
Evaluate = Callable[[Node, str], float | int | None]
"""Computes a constant expression: (expression node, column) → its number, or None."""


@dataclass
class TopicNeeds:
    """What the query needs from one topic."""

    name: str
    references: int = 0
    columns: set[str] = field(default_factory=set)
    bounds: ScanBounds = field(default_factory=ScanBounds)
    # the top-level fields of ``value`` the query reads (``value.temp``), or None when it may
    # read the value whole
    value_fields: set[str] | None = None


@dataclass
class QueryShape:
    """What :func:`analyse` found in a statement."""

    topics: dict[str, TopicNeeds]
    aggregates: bool  # GROUP BY, an aggregate or window function, DISTINCT, a set operation…
    tables: set[str]  # every plain table name the statement reads (topics or not)


def analyse(
    tree: Node, topics: set[str], aggregate_names: set[str], evaluate: Evaluate
) -> QueryShape:
    """Read one statement's syntax tree (``json_serialize_sql``'s ``statements[0]``)."""
    node = tree["node"]
    ctes = {item["key"] for cte in _walk_key(node, "cte_map") for item in cte.get("map", [])}
    refs = [t for t in _nodes(node) if t.get("type") == "BASE_TABLE"]
    plain = [t for t in refs if not t.get("schema_name") and not t.get("catalog_name")]
    tables = {t["table_name"] for t in plain} - ctes
    needs: dict[str, TopicNeeds] = {}
    for ref in plain:
        name = ref["table_name"]
        if name in topics and name not in ctes:
            needs.setdefault(name, TopicNeeds(name)).references += 1
    used = _used_columns(node, needs, plain)
    fields = _value_fields(node)
    for name, need in needs.items():
        need.columns = used[name]
        need.value_fields = fields
    for select in _select_nodes(node):
        for ref in _from_tables(select.get("from_table")):
            found = needs.get(ref.get("table_name", ""))
            if found is None or found.references != 1 or ref.get("schema_name"):
                continue
            found.bounds = _bounds(select, ref, evaluate)
    return QueryShape(needs, _aggregates(node, aggregate_names), tables)


# --- walking the tree ---------------------------------------------------------------------


def _nodes(tree: Any) -> Iterator[Node]:
    """Every dict in the tree, depth first."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _walk_key(tree: Any, key: str) -> Iterator[Any]:
    for node in _nodes(tree):
        if key in node and node[key] is not None:
            yield node[key]


def _select_nodes(tree: Any) -> Iterator[Node]:
    for node in _nodes(tree):
        if node.get("type") == "SELECT_NODE":
            yield node


def _from_tables(table: Node | None) -> Iterator[Node]:
    """The base tables of a FROM clause, through its joins (not into subqueries)."""
    if not table:
        return
    if table.get("type") == "BASE_TABLE":
        yield table
    elif table.get("type") == "JOIN":
        yield from _from_tables(table.get("left"))
        yield from _from_tables(table.get("right"))


def _merging_joins(table: Node | None) -> bool:
    """True when a join of the FROM merges columns (USING, NATURAL): a plain column name may
    then mean a merged column rather than the topic's own."""
    if not table or table.get("type") != "JOIN":
        return False
    if table.get("using_columns") or table.get("ref_type") == "NATURAL":
        return True
    return _merging_joins(table.get("left")) or _merging_joins(table.get("right"))


def _used_columns(
    node: Node, needs: dict[str, TopicNeeds], refs: list[Node]
) -> dict[str, set[str]]:
    """Per topic, the record columns the statement can use (all of them after a ``*`` or a
    whole-row reference)."""
    names = {ref.get("alias") or ref["table_name"] for ref in refs} | set(needs)
    everything = False
    used: set[str] = set()
    for item in _nodes(node):
        kind = item.get("class")
        if kind == "STAR":
            everything = True
        elif kind == "COLUMN_REF":
            parts = item.get("column_names", [])
            if len(parts) == 1 and parts[0] in names and parts[0] not in VIEW_COLUMNS:
                everything = True  # ``SELECT r FROM readings r``: the whole row
            used.update(p for p in parts if p in VIEW_COLUMNS)
    return {name: set(VIEW_COLUMNS) if everything else set(used) for name in needs}


def _value_fields(node: Node) -> set[str] | None:
    """The fields of ``value`` read as ``value.f`` or ``t.value.f``; None when ``value`` may be
    read whole (alone, by ``*``, in a function call such as ``value['f']``)."""
    fields: set[str] = set()
    for item in _nodes(node):
        kind = item.get("class")
        if kind == "STAR":
            return None
        if kind != "COLUMN_REF":
            continue
        parts = item.get("column_names", [])
        if "value" not in parts:
            continue
        at = parts.index("value")
        if at > 1 or at + 1 >= len(parts):
            return None
        fields.add(parts[at + 1])
    return fields or None


def _aggregates(node: Node, aggregate_names: set[str]) -> bool:
    for item in _nodes(node):
        kind, type_ = item.get("class"), item.get("type")
        if kind == "WINDOW" or type_ == "SET_OPERATION_NODE":
            return True
        if kind == "FUNCTION" and item.get("function_name", "").lower() in aggregate_names:
            return True
        if type_ == "SELECT_NODE" and (item.get("group_expressions") or item.get("having")):
            return True
        if type_ == "DISTINCT_MODIFIER":
            return True
    return False


# --- bounds --------------------------------------------------------------------------------


def _conjuncts(where: Node | None) -> Iterator[Node]:
    if not where:
        return
    if where.get("type") == "CONJUNCTION_AND":
        for child in where.get("children", []):
            yield from _conjuncts(child)
    else:
        yield where


def _bounds(select: Node, ref: Node, evaluate: Evaluate) -> ScanBounds:
    qualifier = ref.get("alias") or ref["table_name"]
    aliases = {item.get("alias") for item in select.get("select_list", [])}
    plain_ok = not _merging_joins(select.get("from_table"))

    def column(expr: Node) -> str | None:
        if expr.get("class") != "COLUMN_REF":
            return None
        parts = expr.get("column_names", [])
        if len(parts) == 1 and plain_ok and parts[0] not in aliases:
            name = parts[0]
        elif len(parts) == 2 and parts[0] == qualifier:
            name = parts[1]
        else:
            return None
        return name if name in _BOUND_COLUMNS else None

    limits: dict[str, list[int | None]] = {c: [None, None] for c in _BOUND_COLUMNS}
    partitions: set[int] | None = None
    for conjunct in _conjuncts(select.get("where_clause")):
        for name, op, expr in _comparisons(conjunct, column):
            if op == "in":
                computed = [evaluate(e, name) for e in expr]
                values = [v for v in computed if v is not None]
                if len(values) != len(computed) or not values:
                    continue
                if name == "partition":
                    found = {int(v) for v in values if float(v).is_integer()}
                    partitions = found if partitions is None else partitions & found
                else:
                    _narrow(limits[name], ">=", min(values), name)
                    _narrow(limits[name], "<=", max(values), name)
                continue
            value = evaluate(expr, name)
            if value is None:
                continue
            if name == "partition" and op == "=":
                wanted = {int(value)} if float(value).is_integer() else set()
                partitions = wanted if partitions is None else partitions & wanted
                continue
            _narrow(limits[name], op, value, name)
    low_p, high_p = limits["partition"]
    if low_p is not None or high_p is not None:
        top = MAX_PARTITIONS - 1 if high_p is None else min(high_p, MAX_PARTITIONS - 1)
        span = set(range(max(low_p or 0, 0), top + 1))
        partitions = span if partitions is None else partitions & span
    return ScanBounds(
        partitions=None if partitions is None else frozenset(partitions),
        min_offset=limits["record_offset"][0],
        max_offset=limits["record_offset"][1],
        min_timestamp=limits["timestamp"][0],
        max_timestamp=limits["timestamp"][1],
    )


def _comparisons(
    conjunct: Node, column: Callable[[Node], str | None]
) -> Iterator[tuple[str, str, Any]]:
    """(column, operator, constant expression) of a simple comparison; ``in`` and a list of
    expressions for IN; two of them for BETWEEN."""
    kind, type_ = conjunct.get("class"), conjunct.get("type")
    if kind == "COMPARISON" and type_ in _COMPARISONS:
        op = _COMPARISONS[type_]
        left, right = conjunct["left"], conjunct["right"]
        if (name := column(left)) and _constant(right):
            yield name, op, right
        elif (name := column(right)) and _constant(left):
            yield name, _MIRROR[op], left
    elif kind == "BETWEEN":
        name = column(conjunct["input"])
        if name and _constant(conjunct["lower"]) and _constant(conjunct["upper"]):
            yield name, ">=", conjunct["lower"]
            yield name, "<=", conjunct["upper"]
    elif type_ == "COMPARE_IN":
        first, *rest = conjunct.get("children", [None])
        name = column(first) if first else None
        if name and rest and all(_constant(e) for e in rest):
            yield name, "in", rest


def _constant(expr: Node) -> bool:
    """True when ``expr`` reads no column, no subquery and no parameter."""
    for item in _nodes(expr):
        if item.get("class") in ("COLUMN_REF", "SUBQUERY", "PARAMETER", "STAR", "WINDOW"):
            return False
        if item.get("type") in ("SELECT_NODE", "SET_OPERATION_NODE"):
            return False
    return True


def _narrow(limit: list[int | None], op: str, value: float, name: str) -> None:
    """Tighten ``[low, high]`` (whole numbers, inclusive) by ``column op value``; a timestamp's
    value is in microseconds and its limits in milliseconds."""
    if name == "timestamp":
        value = value / 1000
    low = high = None
    if op in (">", ">="):
        low = math.floor(value) + 1 if op == ">" else math.ceil(value)
    elif op in ("<", "<="):
        high = math.ceil(value) - 1 if op == "<" else math.floor(value)
    elif op == "=":
        low, high = math.ceil(value), math.floor(value)
    if low is not None:
        limit[0] = low if limit[0] is None else max(limit[0], low)
    if high is not None:
        limit[1] = high if limit[1] is None else min(limit[1], high)


def expression_sql(expr: Node, template: Node) -> Node:
    """A ``SELECT <expr>`` statement tree, made from ``template`` (``SELECT 1``'s tree)."""
    tree = json.loads(json.dumps(template))
    tree["statements"][0]["node"]["select_list"] = [expr]
    return tree
