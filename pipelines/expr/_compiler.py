"""The expression compiler: checks an expression's syntax tree against a whitelist and rewrites
it into one plain Python function of an event.

The rewrite is what makes expressions both safe and fast:

- Names become reads of the event (``value`` → ``_e.value``), made once at the top of the
  function. Nothing else is in reach: the function's globals hold only the whitelisted
  functions and the helpers below, and its builtins are empty.
- Every ``a.b`` and ``a["b"]`` becomes a field read, never an attribute access: on a dict it is
  ``d.get("b")`` inline, on anything else a helper that answers None. A field path that is read
  more than once, or read through (``value.a`` in ``value.a.b``), is read once into a local.
- Arithmetic on constants alone is computed when compiling, through the same bounds as at
  run time, so a constant that is too large is a ConfigError. ``**``, ``<<``, ``*`` and ``%``
  with an operand from the event go through helpers that refuse enormous results (and ``%``
  formatting of text); ``x * 9`` and ``x % 10`` stay inline when ``x`` is a number.
- Every comprehension's iterable is counted against one budget per evaluation
  (:data:`~._functions.MAX_ITERATIONS` items), so nested loops cannot run away; constant
  iterables are counted when compiling.
"""

from __future__ import annotations

import ast
import difflib
import operator
import re
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from millstream.core.errors import ConfigError

from . import _functions as fn

__all__ = ["NAMES", "compile_function"]

NAMES: tuple[str, ...] = ("value", "key", "headers", "timestamp", "topic", "partition", "offset")
"""The names an expression may read, each a part of the event."""

MAX_LENGTH = 10_000
"""The longest expression text accepted."""

_ROOT_READS: dict[str, Callable[[ast.expr], ast.expr]] = {
    "value": lambda e: _attr(e, "value"),
    "key": lambda e: _call("_key_text", _attr(e, "key")),
    "headers": lambda e: _call("_headers_text", _attr(e, "headers")),
    "timestamp": lambda e: _attr(e, "timestamp"),
    "topic": lambda e: _attr(e, "topic"),
    "partition": lambda e: _attr(e, "partition"),
    "offset": lambda e: _attr(e, "offset"),
}

_HELPERS: dict[str, Any] = {
    "_dict": dict,
    "_slice": slice,
    "_field": fn.field,
    "_item": fn.item,
    "_key_text": fn.key_text,
    "_headers_text": fn.headers_text,
    "_pow": fn.bounded_pow,
    "_lshift": fn.bounded_lshift,
    "_mul": fn.bounded_mul,
    "_mod": fn.text_mod,
    "_iter": fn.iterations,
    "_int": int,
    "_float": float,
}

_BINARY = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
}
_UNARY = (ast.Not, ast.USub, ast.UAdd, ast.Invert)
_CONSTANT_TYPES = (str, bytes, int, float, bool, type(None))
_SMALL_NUMBER = 2**64
"""A numeric constant below this keeps ``x * c`` and ``x % c`` inline for a number ``x``: it
adds at most 64 bits to an integer."""
_BUDGET = "_b"
"""The local holding the comprehension budget of one evaluation: ``[items left]``."""
_FOLDED: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Pow: fn.bounded_pow,
    ast.LShift: fn.bounded_lshift,
    ast.Mult: fn.bounded_mul,
    ast.Mod: fn.text_mod,
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.RShift: operator.rshift,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
    ast.BitAnd: operator.and_,
}
"""How constant operands are combined when compiling: within the same bounds as at run time."""
_FORMAT_SPEC = re.compile(r"[^{}]{0,24}")
_FORMAT_WIDTH = re.compile(r"\d{4,}")

_NOT_ALLOWED = {
    "Lambda": "lambda",
    "NamedExpr": "':=' (assignment)",
    "Await": "await",
    "Yield": "yield",
    "YieldFrom": "yield",
    "Starred": "'*' unpacking here",
    "Slice": "a slice here",
    "GeneratorExp": "a bare generator expression (give it to a function: any(...), sum(...))",
}

_NOT_CONSTANT = object()


def _attr(base: ast.expr, name: str) -> ast.expr:
    return ast.Attribute(value=base, attr=name, ctx=ast.Load())


def _name(name: str) -> ast.Name:
    return ast.Name(id=name, ctx=ast.Load())


def _call(name: str, *args: ast.expr) -> ast.expr:
    return ast.Call(func=_name(name), args=list(args), keywords=[])


def _dict_or(base: ast.expr, test_base: ast.expr, key: ast.expr, slow: str) -> ast.expr:
    """``base.get(key) if test_base.__class__ is _dict else slow(base, key)``."""
    return ast.IfExp(
        test=ast.Compare(
            left=_attr(test_base, "__class__"), ops=[ast.Is()], comparators=[_name("_dict")]
        ),
        body=ast.Call(func=_attr(base, "get"), args=[key], keywords=[]),
        orelse=_call(slow, base, key),
    )


Path = tuple[str | int, ...]


def _constant_path(node: ast.AST) -> Path | None:
    """``value.a["b"][0]`` → ``("value", "a", "b", 0)``; None for anything else."""
    keys: list[str | int] = []
    while True:
        if isinstance(node, ast.Attribute):
            keys.append(node.attr)
            node = node.value
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and type(node.slice.value) in (str, int)
        ):
            keys.append(node.slice.value)  # type: ignore[arg-type]
            node = node.value
        elif isinstance(node, ast.Name) and node.id in NAMES:
            return (node.id, *reversed(keys))
        else:
            return None


class _Compiler:
    """Checks and rewrites the trees of one or more expressions into one function body."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.globals: dict[str, Any] = {"__builtins__": {}}
        self.locals: dict[Path, str] = {}
        self.prelude: list[ast.stmt] = []
        self.path_uses: Counter[Path] = Counter()
        self.scopes: list[set[str]] = []
        self.in_iterable = 0
        self.temps = 0
        self.constants: dict[int, Any] = {}
        self.constant_work = [1]
        self.counts_iterations = False

    # -- entry ----------------------------------------------------------------------------

    def function(
        self, trees: Sequence[ast.Expression], fields: Sequence[str] | None = None
    ) -> Callable[[Any], Any]:
        """The function computing ``trees``: their value (a tuple of them, for several); or,
        with ``fields``, storing each into that field of the value, after computing them all.
        """
        for tree in trees:
            for node in ast.walk(tree):
                path = _constant_path(node)
                if path is not None:
                    self.path_uses[path] += 1
        results = [self.visit(tree.body) for tree in trees]
        if self.counts_iterations:
            budget = ast.List(elts=[ast.Constant(value=fn.MAX_ITERATIONS)], ctx=ast.Load())
            self.prelude.insert(
                0,
                ast.Assign(targets=[ast.Name(id=_BUDGET, ctx=ast.Store())], value=budget, lineno=0),
            )
        body: list[ast.stmt]
        if fields is None:
            result = results[0] if len(results) == 1 else ast.Tuple(elts=results, ctx=ast.Load())
            body = [*self.prelude, ast.Return(value=result)]
        else:
            computed = [
                ast.Assign(targets=[ast.Name(id=f"_r{i}", ctx=ast.Store())], value=r, lineno=0)
                for i, r in enumerate(results)
            ]
            value = self.read_path(("value",))
            stores = [
                ast.Assign(
                    targets=[
                        ast.Subscript(value=value, slice=ast.Constant(value=name), ctx=ast.Store())
                    ],
                    value=_name(f"_r{i}"),
                    lineno=0,
                )
                for i, name in enumerate(fields)
            ]
            body = [*self.prelude, *computed, *stores, ast.Return(value=ast.Constant(value=None))]
        definition = ast.FunctionDef(
            name="expression",
            args=ast.arguments(
                posonlyargs=[ast.arg(arg="_e")],
                args=[],
                kwonlyargs=[],
                kw_defaults=[],
                defaults=[],
            ),
            body=body,
            decorator_list=[],
            returns=None,
        )
        module = ast.fix_missing_locations(ast.Module(body=[definition], type_ignores=[]))
        for helper, value in _HELPERS.items():
            self.globals.setdefault(helper, value)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                code = compile(module, "<expression>", "exec")
        except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
            raise self.error(None, f"cannot be compiled: {exc}") from None
        namespace = dict(self.globals)
        exec(code, namespace)
        function: Callable[[Any], Any] = namespace.pop("expression")
        return function

    # -- errors ---------------------------------------------------------------------------

    def error(self, node: ast.AST | None, message: str) -> ConfigError:
        shown = self.text if len(self.text) <= 80 else self.text[:77] + "..."
        where = ""
        column = getattr(node, "col_offset", 0)
        if column > 0:
            where = f" (at column {column + 1})"
        return ConfigError(f"invalid expression {shown!r}: {message}{where}")

    # -- dispatch -------------------------------------------------------------------------

    def visit(self, node: ast.AST) -> ast.expr:
        kind = type(node).__name__
        method = getattr(self, f"visit_{kind}", None)
        if method is None:
            what = _NOT_ALLOWED.get(kind) or _describe(node)
            raise self.error(node, f"{what} is not allowed in an expression")
        result: ast.expr = method(node)
        return result

    def visit_Constant(self, node: ast.Constant) -> ast.expr:
        if type(node.value) not in _CONSTANT_TYPES:
            raise self.error(node, f"the constant {node.value!r} is not allowed")
        return ast.Constant(value=node.value)

    def visit_Name(self, node: ast.Name) -> ast.expr:
        name = node.id
        if any(name in scope for scope in self.scopes):
            return _name(name)
        if name in NAMES:
            return self.read_path((name,))
        if name in fn.FUNCTIONS:
            raise self.error(node, f"the function {name!r} can only be called: {name}(...)")
        raise self.error(node, _unknown_name(name))

    # -- field reads ----------------------------------------------------------------------

    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
        if node.attr.startswith("_"):
            raise self.error(node, f"field names starting with '_' are not allowed: {node.attr!r}")
        if isinstance(node.value, ast.Name) and node.value.id in fn.FUNCTIONS:
            raise self.error(
                node,
                f"{node.value.id}.{node.attr}: functions have no fields; only calls "
                "to the listed functions are allowed",
            )
        path = _constant_path(node)
        if path is not None:
            return self.read_path(path)
        return self.read(node.value, ast.Constant(value=node.attr), "_field")

    def visit_Subscript(self, node: ast.Subscript) -> ast.expr:
        if isinstance(node.slice, ast.Slice):
            parts = [
                ast.Constant(value=None) if part is None else self.visit(part)
                for part in (node.slice.lower, node.slice.upper, node.slice.step)
            ]
            return _call("_item", self.visit(node.value), _call("_slice", *parts))
        path = _constant_path(node)
        if path is not None:
            return self.read_path(path)
        return self.read(node.value, self.visit(node.slice), "_item")

    def read_path(self, path: Path) -> ast.expr:
        """A constant field path: from a local when read before or read more than once."""
        local = self.locals.get(path)
        if local is not None:
            return _name(local)
        if len(path) == 1:
            return self.hoist(path, _ROOT_READS[str(path[0])](_name("_e")))
        base = _name(self.base_local(path[:-1]))
        slow = "_field" if isinstance(path[-1], str) else "_item"
        read = _dict_or(base, base, ast.Constant(value=path[-1]), slow)
        if self.path_uses[path] > 1:
            return self.hoist(path, read)
        return read

    def base_local(self, path: Path) -> str:
        if path not in self.locals:
            read = self.read_path(path)
            if path not in self.locals:  # read once, but read through: keep it in a local too
                self.hoist(path, read)
        return self.locals[path]

    def hoist(self, path: Path, read: ast.expr) -> ast.Name:
        local = f"_p{len(self.locals)}"
        self.locals[path] = local
        self.prelude.append(
            ast.Assign(targets=[ast.Name(id=local, ctx=ast.Store())], value=read, lineno=0)
        )
        return _name(local)

    def read(self, base_node: ast.expr, key: ast.expr, slow: str) -> ast.expr:
        """A field read on a computed base: the base is evaluated once."""
        base = self.visit(base_node)
        if isinstance(base, ast.Name):
            return _dict_or(base, base, key, slow)
        if self.in_iterable:  # no ':=' allowed inside a comprehension's iterable
            return _call(slow, base, key)
        self.temps += 1
        temp = f"_t{self.temps}"
        bound = ast.NamedExpr(target=ast.Name(id=temp, ctx=ast.Store()), value=base)
        return _dict_or(_name(temp), bound, key, slow)

    # -- operators ------------------------------------------------------------------------

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.expr:
        return ast.BoolOp(op=node.op, values=[self.visit(v) for v in node.values])

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.expr:
        if not isinstance(node.op, _UNARY):
            raise self.error(node, "this operator is not allowed")
        return ast.UnaryOp(op=node.op, operand=self.visit(node.operand))

    def visit_Compare(self, node: ast.Compare) -> ast.expr:
        return ast.Compare(
            left=self.visit(node.left),
            ops=node.ops,
            comparators=[self.visit(c) for c in node.comparators],
        )

    def visit_IfExp(self, node: ast.IfExp) -> ast.expr:
        return ast.IfExp(
            test=self.visit(node.test), body=self.visit(node.body), orelse=self.visit(node.orelse)
        )

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:
        symbol = _BINARY.get(type(node.op))
        if symbol is None:
            raise self.error(node, "the operator '@' is not allowed")
        folded = self.checked_constant(node)
        if folded is not _NOT_CONSTANT and type(folded) in _CONSTANT_TYPES:
            return ast.Constant(value=folded)  # computed once, within the bounds
        lc, rc = self.checked_constant(node.left), self.checked_constant(node.right)
        left, right = self.visit(node.left), self.visit(node.right)
        plain = ast.BinOp(left=left, op=node.op, right=right)
        if lc is not _NOT_CONSTANT and rc is not _NOT_CONSTANT:
            return plain  # constants alone: checked above ([1] * 3, or 1 / 0 failing per event)
        if isinstance(node.op, ast.Pow):
            return _call("_pow", left, right)
        if isinstance(node.op, ast.LShift):
            return _call("_lshift", left, right)
        if isinstance(node.op, ast.Mult):
            for seq, times in ((node.left, rc), (node.right, lc)):
                literal = isinstance(seq, ast.List | ast.Tuple | ast.JoinedStr)
                if literal and isinstance(times, int) and times > fn.MAX_SEQUENCE:
                    raise self.error(
                        node,
                        f"repeating a sequence {times:,} times is over the limit of "
                        f"{fn.MAX_SEQUENCE:,} items",
                    )
            if _is_small_number(rc):
                return self.numeric_or(node.op, left, right, "_mul", operand_first=True)
            if _is_small_number(lc):
                return self.numeric_or(node.op, right, left, "_mul", operand_first=False)
            return _call("_mul", left, right)
        if isinstance(node.op, ast.Mod):
            if isinstance(lc, str | bytes):
                raise self.error(
                    node, "'%' formatting of text is not allowed; use an f-string or str()"
                )
            if _is_number(lc):
                return plain
            if _is_small_number(rc):
                return self.numeric_or(node.op, left, right, "_mod", operand_first=True)
            return _call("_mod", left, right)
        return plain

    def numeric_or(
        self,
        op: ast.operator,
        operand: ast.expr,
        number: ast.expr,
        helper: str,
        operand_first: bool,
    ) -> ast.expr:
        """``operand op number`` inline when ``operand`` is a float or an int (it cannot grow
        much), else through ``helper``; ``operand`` is evaluated once."""
        if isinstance(operand, ast.Name):
            test_ref: ast.expr = operand
        elif self.in_iterable:  # no ':=' allowed inside a comprehension's iterable
            pair = (operand, number) if operand_first else (number, operand)
            return _call(helper, *pair)
        else:
            self.temps += 1
            temp = f"_t{self.temps}"
            test_ref = ast.NamedExpr(target=ast.Name(id=temp, ctx=ast.Store()), value=operand)
            operand = _name(temp)
        kind = _attr(test_ref, "__class__")
        test = ast.BoolOp(
            op=ast.Or(),
            values=[
                ast.Compare(left=kind, ops=[ast.Is()], comparators=[_name("_float")]),
                ast.Compare(
                    left=_attr(operand, "__class__"), ops=[ast.Is()], comparators=[_name("_int")]
                ),
            ],
        )
        pair = (operand, number) if operand_first else (number, operand)
        return ast.IfExp(
            test=test,
            body=ast.BinOp(left=pair[0], op=op, right=pair[1]),
            orelse=_call(helper, *pair),
        )

    def checked_constant(self, node: ast.AST) -> Any:
        """:meth:`constant`, a result over the bounds being a ConfigError."""
        try:
            return self.constant(node)
        except OverflowError as exc:
            raise self.error(node, str(exc)) from None

    def constant(self, node: ast.AST) -> Any:
        """The value of a constant sub-expression, computed within the bounds (OverflowError
        when it is over them), or ``_NOT_CONSTANT``. Computed once per node."""
        known = self.constants.get(id(node), self)
        if known is self:
            known = self.constants[id(node)] = self.compute_constant(node)
        return known

    def compute_constant(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value if type(node.value) in _CONSTANT_TYPES else _NOT_CONSTANT
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = self.constant(node.operand)
            if _is_number(value):
                return -value if isinstance(node.op, ast.USub) else value
            return _NOT_CONSTANT
        if isinstance(node, ast.List | ast.Tuple):
            items = [self.constant(e) for e in node.elts]
            if any(item is _NOT_CONSTANT for item in items):
                return _NOT_CONSTANT
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = self.constant(node.left), self.constant(node.right)
            if left is _NOT_CONSTANT or right is _NOT_CONSTANT:
                return _NOT_CONSTANT
            try:
                result = _FOLDED[type(node.op)](left, right)
            except OverflowError:
                raise
            except Exception:  # 1 << -1, 1 / 0: left to fail per event, as Python would
                return _NOT_CONSTANT
            if isinstance(result, str | bytes | list | tuple) and len(result) > fn.MAX_SEQUENCE:
                raise OverflowError(
                    f"the result would hold {len(result):,} items, over the limit of "
                    f"{fn.MAX_SEQUENCE:,}"
                )
            return result
        return _NOT_CONSTANT

    # -- calls ----------------------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> ast.expr:
        func = node.func
        if not isinstance(func, ast.Name) or func.id not in fn.FUNCTIONS:
            raise self.error(node, _bad_call(func))
        name = func.id
        if node.keywords:
            raise self.error(node, f"{name}() takes no keyword arguments")
        function, fewest, most = fn.FUNCTIONS[name]
        count = len(node.args)
        if not any(isinstance(a, ast.Starred) for a in node.args) and (
            count < fewest or (most is not None and count > most)
        ):
            want = (
                str(fewest)
                if fewest == most
                else f"{fewest} to {most}"
                if most
                else (f"at least {fewest}")
            )
            raise self.error(node, f"{name}() takes {want} argument(s), got {count}")
        args = [self.argument(a) for a in node.args]
        if name == "match" and isinstance(node.args[1], ast.Constant):
            return self.compiled_match(node, args[0], node.args[1].value)
        self.globals[name] = function
        return ast.Call(func=_name(name), args=args, keywords=[])

    def argument(self, node: ast.expr) -> ast.expr:
        if isinstance(node, ast.Starred):
            return ast.Starred(value=self.visit(node.value), ctx=ast.Load())
        if isinstance(node, ast.GeneratorExp):
            return self.comprehension(node)
        return self.visit(node)

    def compiled_match(self, node: ast.Call, text: ast.expr, pattern: Any) -> ast.expr:
        if not isinstance(pattern, str | bytes):
            raise self.error(node, "match() needs a text pattern")
        try:
            compiled = fn.regex(pattern)
        except re.error as exc:
            raise self.error(node, f"invalid regular expression {pattern!r}: {exc}") from None
        helper = f"_match{sum(1 for g in self.globals if g.startswith('_match'))}"
        self.globals[helper] = fn.searcher(compiled)
        return _call(helper, text)

    # -- literals -------------------------------------------------------------------------

    def elements(self, nodes: list[ast.expr]) -> list[ast.expr]:
        return [
            ast.Starred(value=self.visit(n.value), ctx=ast.Load())
            if isinstance(n, ast.Starred)
            else self.visit(n)
            for n in nodes
        ]

    def visit_List(self, node: ast.List) -> ast.expr:
        return ast.List(elts=self.elements(node.elts), ctx=ast.Load())

    def visit_Tuple(self, node: ast.Tuple) -> ast.expr:
        return ast.Tuple(elts=self.elements(node.elts), ctx=ast.Load())

    def visit_Set(self, node: ast.Set) -> ast.expr:
        return ast.Set(elts=self.elements(node.elts))

    def visit_Dict(self, node: ast.Dict) -> ast.expr:
        return ast.Dict(
            keys=[None if k is None else self.visit(k) for k in node.keys],
            values=[self.visit(v) for v in node.values],
        )

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.expr:
        return ast.JoinedStr(values=[self.visit(v) for v in node.values])

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.expr:
        spec = node.format_spec
        if spec is not None:
            parts = spec.values if isinstance(spec, ast.JoinedStr) else [spec]
            if not all(isinstance(p, ast.Constant) for p in parts):
                raise self.error(node, "a format spec must be constant text, such as :.2f")
            text = "".join(str(p.value) for p in parts)  # type: ignore[attr-defined]
            if not _FORMAT_SPEC.fullmatch(text) or _FORMAT_WIDTH.search(text):
                raise self.error(node, f"the format spec {text!r} is not allowed")
            spec = ast.JoinedStr(values=[ast.Constant(value=text)])
        return ast.FormattedValue(
            value=self.visit(node.value), conversion=node.conversion, format_spec=spec
        )

    # -- comprehensions -------------------------------------------------------------------

    def visit_ListComp(self, node: ast.ListComp) -> ast.expr:
        return self.comprehension(node)

    def visit_SetComp(self, node: ast.SetComp) -> ast.expr:
        return self.comprehension(node)

    def visit_DictComp(self, node: ast.DictComp) -> ast.expr:
        return self.comprehension(node)

    def comprehension(self, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
        """A comprehension whose variables live only inside it and shadow nothing, each of its
        iterables counted against the evaluation's budget (constant ones when compiling)."""
        scope: set[str] = set()
        self.scopes.append(scope)
        self.constant_work.append(self.constant_work[-1])
        self.counts_iterations = True
        try:
            generators = []
            for gen in node.generators:
                if gen.is_async:
                    raise self.error(node, "async comprehensions are not allowed")
                self.count_constant_items(gen.iter)
                self.in_iterable += 1
                try:
                    iterable = _call("_iter", _name(_BUDGET), self.visit(gen.iter))
                finally:
                    self.in_iterable -= 1
                target = self.target(gen.target, scope)
                generators.append(
                    ast.comprehension(
                        target=target,
                        iter=iterable,
                        ifs=[self.visit(test) for test in gen.ifs],
                        is_async=0,
                    )
                )
            if isinstance(node, ast.DictComp):
                return ast.DictComp(
                    key=self.visit(node.key), value=self.visit(node.value), generators=generators
                )
            return type(node)(elt=self.visit(node.elt), generators=generators)
        finally:
            self.scopes.pop()
            self.constant_work.pop()

    def count_constant_items(self, iterable: ast.expr) -> None:
        """ConfigError when the constant iterables of a comprehension and of those it is in
        make it go through more than :data:`~._functions.MAX_ITERATIONS` items."""
        value = self.checked_constant(iterable)
        if value is _NOT_CONSTANT or not isinstance(value, str | bytes | list | tuple):
            return
        work = self.constant_work[-1] * max(len(value), 1)
        if work > fn.MAX_ITERATIONS:
            raise self.error(
                iterable,
                f"the comprehension would go through {work:,} items, over the limit of "
                f"{fn.MAX_ITERATIONS:,} in one evaluation",
            )
        self.constant_work[-1] = work

    def target(self, node: ast.expr, scope: set[str]) -> ast.expr:
        if isinstance(node, ast.Tuple):
            return ast.Tuple(elts=[self.target(e, scope) for e in node.elts], ctx=ast.Store())
        if not isinstance(node, ast.Name):
            raise self.error(node, "a comprehension variable must be a plain name")
        name = node.id
        if name.startswith("_"):
            raise self.error(node, f"names starting with '_' are not allowed: {name!r}")
        if name in NAMES or name in fn.FUNCTIONS or any(name in s for s in self.scopes):
            raise self.error(node, f"the comprehension variable {name!r} would shadow a name")
        scope.add(name)
        return ast.Name(id=name, ctx=ast.Store())


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _is_small_number(value: Any) -> bool:
    return type(value) is float or (type(value) is int and abs(value) < _SMALL_NUMBER)


def _describe(node: ast.AST) -> str:
    return type(node).__name__


def _unknown_name(name: str) -> str:
    if name.startswith("_"):
        return f"names starting with '_' are not allowed: {name!r}"
    known = [*NAMES, *fn.FUNCTIONS]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (
        f"unknown name {name!r}; {hint}an expression reads {', '.join(NAMES)} "
        "(text needs quotes: 'hello')"
    )


def _bad_call(func: ast.expr) -> str:
    known = ", ".join(fn.FUNCTIONS)
    if isinstance(func, ast.Name):
        if func.id.startswith("_"):
            return f"names starting with '_' are not allowed: {func.id!r}"
        close = difflib.get_close_matches(func.id, list(fn.FUNCTIONS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown function {func.id!r}; {hint}known: {known}"
    if isinstance(func, ast.Attribute):
        return f"method calls (.{func.attr}(...)) are not allowed; functions: {known}"
    return f"only the listed functions can be called: {known}"


def compile_function(
    texts: Sequence[str], fields: Sequence[str] | None = None
) -> Callable[[Any], Any]:
    """One function of an event computing ``texts[0]`` (or, for several, the tuple of all of
    them, sharing their field reads); with ``fields``, one that computes them all and then
    stores each into that field of the event's value (a dict). ConfigError naming the first
    invalid text."""
    if len(texts) == 1 and fields is None:
        return _checked(texts[0])[1]
    trees = [_checked(text)[0] for text in texts]
    return _Compiler(" | ".join(texts)).function(trees, fields)


def _checked(text: str) -> tuple[ast.Expression, Callable[[Any], Any]]:
    """The syntax tree of ``text`` and its function; ConfigError when it is not valid."""
    if not isinstance(text, str):
        raise ConfigError(f"an expression must be text, got {type(text).__name__}: {text!r}")
    if not text.strip():
        raise ConfigError("an expression must not be empty")
    if len(text) > MAX_LENGTH:
        raise _Compiler(text).error(None, f"longer than {MAX_LENGTH} characters")
    try:
        with warnings.catch_warnings():  # '\d' in a pattern is kept as it is, quietly
            warnings.simplefilter("ignore")
            tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        where = f" (at column {exc.offset})" if exc.offset else ""
        raise _Compiler(text).error(None, f"{exc.msg}{where}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise _Compiler(text).error(None, str(exc) or type(exc).__name__) from None
    try:
        return tree, _Compiler(text).function([tree])
    except RecursionError:
        raise _Compiler(text).error(None, "nested too deeply") from None
