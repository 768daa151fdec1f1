"""Pipeline expressions: ``value.temp is not None and value.temp > 20``.

An expression is Python expression syntax over the parts of one event:

``value``
    the decoded value (a dict for JSON); ``value.a.b`` and ``value["a"]`` read fields.
``key``
    the record key as text (UTF-8), None when the record has none.
``headers``
    a dict header name → text.
``timestamp``, ``topic``, ``partition``, ``offset``
    as on :class:`~millstream.core.event.Event`.

A field read never fails: a missing field, a field of None, or a field of something that is
not a dict reads as None (``value.items[5]`` past the end of a list too). Operators are
Python's, so ``None > 5`` raises TypeError; at run time an expression that raises rejects that
event (it goes to the dead-letter topic with the error) and the pipeline goes on.

Only the functions in :data:`FUNCTIONS` can be called. No imports, no attribute access other
than field reads, no name starting with ``_``, no lambda, no assignment; comprehensions are
allowed, their variables stay inside them and may not shadow a name. All of this is checked by
:func:`compile_expression`, which turns the text into one plain Python function, once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from millstream.core.errors import ConfigError
from millstream.core.event import Event
from millstream.core.step import Expression

from ._compiler import NAMES, compile_function
from ._functions import FUNCTIONS as _FUNCTION_TABLE

__all__ = [
    "FUNCTIONS",
    "NAMES",
    "ExpressionText",
    "compile_expression",
    "compile_expressions",
    "compile_update",
]

FUNCTIONS: tuple[str, ...] = tuple(_FUNCTION_TABLE)
"""The names of the functions an expression may call."""


@functools.lru_cache(maxsize=1024)
def compile_expression(text: str) -> Expression:
    """``text`` compiled into a function of an event, once (the same text gives the same
    function).

    Raises :class:`ConfigError` with a one-line message (no file position: the caller adds it)
    when the text is not a valid expression or uses anything outside the language.
    """
    function = compile_function([text])
    function.__doc__ = text
    return function


def compile_expressions(texts: Sequence[str]) -> Callable[[Event], tuple[Any, ...]]:
    """One function giving the values of all of ``texts`` for an event, as a tuple, reading
    each field they share once. ConfigError names the first invalid text."""
    texts = list(texts)
    if not texts:
        return lambda event: ()
    if len(texts) == 1:
        single = compile_expression(texts[0])
        return lambda event: (single(event),)
    return compile_function(texts)


def compile_update(fields: Mapping[str, str]) -> Callable[[Event], None]:
    """One function that computes every expression of ``fields`` (field name → expression)
    for an event and then sets each field of the event's value, which must be a dict; the
    expressions all see the value as it was. ConfigError names the first invalid expression."""
    if not fields:
        return lambda event: None
    return compile_function(list(fields.values()), list(fields))


def _check(text: str) -> str:
    try:
        compile_expression(text)
    except ConfigError as exc:
        raise PydanticCustomError("expression", "{message}", {"message": exc.message}) from None
    return text


ExpressionText = Annotated[
    str,
    AfterValidator(_check),
    Field(description="a pipeline expression, such as value.temp > 20"),
]
"""A pydantic field type for a step argument that holds an expression: checked when the
pipeline file is validated, so an invalid one is reported with its file position."""
