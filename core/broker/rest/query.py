"""``POST /query``: read-only SQL over the topics (see docs/query.md), answered as JSON rows.

The broker's own store belongs to its event loop and is not safe to share with another thread,
so each query opens the data directory read-only in a worker thread, as any other process may
while the broker writes it, runs there through :func:`~millstream.core.query.engine.run_query`
and closes it. REST queries may read no files (``allow`` is empty): only the topics.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from pydantic import TypeAdapter

from ...errors import MillstreamError, QueryError
from ...log import LogStore
from .bodies import broker_of, json_response, read_json
from .errors import RestError
from .models import QueryRequest, QueryResponse

__all__ = ["routes", "run_read_only"]

_BODY = TypeAdapter(QueryRequest)
_CLI_WORDS = (
    ("--max-rows (0 for none)", "max_rows"),
    ("--timeout", "timeout_ms"),
    ("--max-memory", "the broker's query memory limit"),
    ("--max-temp-disk", "its temporary disk limit"),
)


def run_read_only(data_dir: Path, sql: str, max_rows: int, timeout_s: float) -> QueryResponse:
    """Run ``sql`` over the store in ``data_dir`` opened read-only (blocking: call it in a
    worker thread); QueryError when the query is not valid, not allowed or fails."""
    from ...query.engine import run_query

    store = LogStore.open(data_dir, read_only=True, create=False)
    try:
        result = run_query(store, sql, max_rows, timeout_s, allow=())
    finally:
        asyncio.run(store.close())
    rows = [list(row) for row in result.rows]
    json_columns = [i for i, kind in enumerate(result.types) if kind == "JSON"]
    for row in rows:
        for i in json_columns:
            if isinstance(row[i], str):
                row[i] = orjson.loads(row[i])
    return QueryResponse(
        columns=result.columns,
        types=result.types,
        rows=orjson.loads(orjson.dumps(rows, default=_plain, option=orjson.OPT_NON_STR_KEYS)),
        elapsed_ms=round(result.elapsed_s * 1000, 3),
    )


def _plain(value: Any) -> Any:
    """A value orjson cannot write as JSON: bytes as base64 text, anything else as its text."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return str(value)


async def post_query(request: web.Request) -> web.Response:
    spec = await read_json(request, _BODY)
    data_dir = broker_of(request).config.data_dir
    try:
        answer = await asyncio.to_thread(
            run_read_only, data_dir, spec.sql, spec.max_rows, spec.timeout_ms / 1000
        )
    except QueryError as exc:
        message = str(exc)
        for cli, field in _CLI_WORDS:
            message = message.replace(cli, field)
        if "pip install" in message:
            raise RestError(501, "QUERY_NOT_AVAILABLE", message) from None
        raise RestError(400, "INVALID_QUERY", message) from None
    except MillstreamError as exc:
        raise RestError(503, "KAFKA_STORAGE_ERROR", f"the store cannot be read: {exc}") from None
    return json_response(answer)


def routes() -> list[web.RouteDef]:
    return [web.post("/query", post_query)]
