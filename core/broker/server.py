"""The broker process: an asyncio TCP server speaking the Kafka protocol over a core.log store.

Each connection reads request frames as they come (pipelining), starts a task per request and
writes the responses in request order. At most ``max_in_flight`` requests of a connection are
held ahead of the response being written, and a Fetch is only served once every response before
it has been written, so a connection holds at most one Fetch response (at most
``fetch_max_bytes`` of records) however many it pipelines. A client that reads nothing of a
response for ``idle_timeout_s`` is disconnected, as is one that sends nothing for that long.
A malformed frame (a lying length prefix, a truncated header, an unknown API key or version, a
body that does not decode) is logged in one line naming the peer and closes that connection
only; any other failure is answered with a Kafka error code, except for a Produce with acks=0,
which allows no answer: the connection is closed instead, as Kafka does. Beyond
``max_connections`` open connections, a new one is closed as it is accepted.

Shutdown (:meth:`Broker.stop`): stop accepting, stop reading, answer the members waiting in
JoinGroup or SyncGroup (COORDINATOR_NOT_AVAILABLE: they find the coordinator again), finish the
other requests in flight and write their responses, then stop the log's upkeep and close the
store (fsync, clean-shutdown mark).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import Any

from ..errors import ProtocolError
from ..log import LogMaintenance, LogStore
from ..protocol import (
    SUPPORTED_VERSIONS,
    ApiKey,
    ErrorCode,
    RequestHeader,
    api_versions_fallback,
    decode_request_body,
    decode_request_header,
    encode_response,
    read_frame,
    response_class,
)
from .admin_apis import AdminApis
from .config import BrokerConfig
from .group_apis import group_handlers
from .groups import GroupCoordinator
from .handler import Handler, RequestContext, serving
from .log_apis import LogApis, produce_error
from .metrics import BrokerMetrics

__all__ = ["Broker"]

_log = logging.getLogger("millstream.broker")

_SHUTDOWN_GRACE_S = 30.0
_GROUP_KEYS = (
    ApiKey.FIND_COORDINATOR,
    ApiKey.JOIN_GROUP,
    ApiKey.HEARTBEAT,
    ApiKey.LEAVE_GROUP,
    ApiKey.SYNC_GROUP,
    ApiKey.OFFSET_COMMIT,
    ApiKey.OFFSET_FETCH,
    ApiKey.DESCRIBE_GROUPS,
    ApiKey.LIST_GROUPS,
    ApiKey.DELETE_GROUPS,
)


class Broker:
    """One broker node serving the store in ``config.data_dir``; it is the handlers'
    :class:`~.handler.BrokerContext`."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.node_id = config.node_id
        self.host = config.host
        self.port = config.port
        self.store: LogStore = None  # type: ignore[assignment]  # set by start()
        self.handlers: dict[int, Handler] = {}
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._coordinator: GroupCoordinator | None = None
        self._log_apis: LogApis | None = None
        self._maintenance: LogMaintenance | None = None
        self.metrics = BrokerMetrics()
        """Traffic, request latency and connection counters (``GET /metrics``)."""

    @property
    def coordinator(self) -> GroupCoordinator | None:
        """The group coordinator (None before start and after stop)."""
        return self._coordinator

    @property
    def listen_port(self) -> int:
        """The port actually bound (useful with ``--listen HOST:0``)."""
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        """Open the store, apply retention and compaction once, load producer ids and groups,
        and start listening; from then on retention and compaction run every
        ``maintenance_interval_s``."""
        self.store = LogStore.open(self.config.data_dir)
        try:
            maintenance = LogMaintenance(self.store, self.config.maintenance_interval_s)
            maintenance.run_now()
            log_apis = self._log_apis = LogApis(self, self.metrics)
            log_apis.start()
            admin = AdminApis(self, lambda: set(self.handlers), self._topic_deleted)
            coordinator = self._coordinator = GroupCoordinator(self)
            await coordinator.start()
            self.handlers = {
                **log_apis.handlers(),
                **admin.handlers(),
                **group_handlers(coordinator),
            }
            self._server = await asyncio.start_server(
                self._accept, self.config.listen_host, self.config.listen_port
            )
            maintenance.start()
            self._maintenance = maintenance
        except BaseException:
            await self._close_groups()
            await self.store.close()
            raise
        if self.config.advertised_port is None and self.config.listen_port == 0:
            self.port = self.listen_port

    async def _topic_deleted(self, topic: str) -> None:
        """Forget what the broker kept for a deleted topic: producer sequences, groups'
        committed offsets."""
        if self._log_apis is not None:
            self._log_apis.sequences.forget_topic(topic)
        if self._coordinator is not None:
            await self._coordinator.topic_deleted(topic)
        self.metrics.topic_deleted(topic)

    async def _close_groups(self) -> None:
        if self._coordinator is not None:
            coordinator, self._coordinator = self._coordinator, None
            await coordinator.close()

    async def stop(self) -> None:
        """Stop accepting, finish in-flight requests, close the coordinator and the store."""
        if self._server is not None:
            self._server.close()
        if self._log_apis is not None:
            self._log_apis.stopping.set()
        connections = list(self._connections)
        for connection in connections:
            connection.stop_reading()
        await self._close_groups()  # answers the JoinGroup and SyncGroup requests waiting
        if connections:
            await asyncio.wait(
                [asyncio.ensure_future(c.done.wait()) for c in connections],
                timeout=_SHUTDOWN_GRACE_S,
            )
        for connection in list(self._connections):
            connection.abort()
        if self._maintenance is not None:
            await self._maintenance.stop()
        if self.store is not None:
            await self.store.close()

    # --- connections --------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        limit = self.config.max_connections
        if len(self._connections) >= limit:
            _log.warning(
                "refusing connection from %s: %d connections are open, the most allowed "
                "(--max-connections)",
                _peer_name(writer),
                limit,
            )
            writer.close()
            return
        connection = _Connection(self, reader, writer)
        self._connections.add(connection)
        self.metrics.connection_opened()
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)
            self.metrics.connection_closed()

    def dispatch(self, frame: bytes) -> Awaitable[bytes | None]:
        """Start answering one request frame; its response frame (None: no response).

        Raises ProtocolError for a frame that cannot be answered at all.
        """
        header, _ = decode_request_header(frame)
        key, version = header.api_key, header.api_version
        support = SUPPORTED_VERSIONS.get(key)
        if support is None:
            raise ProtocolError(f"unknown API key {key} (correlation id {header.correlation_id})")
        if key == ApiKey.API_VERSIONS and not support.serves(version):
            return _done(api_versions_fallback(header))
        low, high = support.advertised
        if not low <= version <= high:
            raise ProtocolError(
                f"unsupported version {version} of API {key}; supported: {low} to {high}"
            )
        body = decode_request_body(header, frame)
        unanswerable = key == ApiKey.PRODUCE and body.acks == 0
        if not support.serves(version):
            if unanswerable:
                raise ProtocolError(
                    f"Produce v{version} is not supported and its acks=0 allows no error "
                    f"answer; served: {support.served[0]} to {support.served[1]}"
                )
            return _done(encode_response(header, error_response(key, body, _UNSUPPORTED)))
        handler = self.handlers.get(key)
        if handler is None:
            code = ErrorCode.COORDINATOR_NOT_AVAILABLE if key in _GROUP_KEYS else _UNSUPPORTED
            return _done(encode_response(header, error_response(key, body, code)))
        answer = _answer(handler, header, body, self.metrics, unanswerable=unanswerable)
        if key == ApiKey.FETCH:
            return answer  # started by the write loop once the responses before it are written
        return asyncio.ensure_future(answer)


_UNSUPPORTED = ErrorCode.UNSUPPORTED_VERSION


def error_response(api_key: int, body: Any, code: ErrorCode) -> Any:
    """A response of ``api_key`` carrying ``code`` where the API has room for it."""
    if api_key == ApiKey.PRODUCE:
        return produce_error(body, code)
    response = response_class(api_key)()
    if hasattr(response, "error_code"):
        response.error_code = code
    return response


def _done(frame: bytes | None) -> asyncio.Future[bytes | None]:
    future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
    future.set_result(frame)
    return future


class _HangUp(Exception):
    """The request cannot be answered: the connection must be closed (the message says why)."""


async def _answer(
    handler: Handler,
    header: RequestHeader,
    body: Any,
    metrics: BrokerMetrics | None = None,
    *,
    unanswerable: bool = False,
) -> bytes | None:
    """The response frame to one request (None: none is sent).

    A failure of the handler, or of encoding what it returned, is answered with
    UNKNOWN_SERVER_ERROR; for an ``unanswerable`` request (Produce with acks=0) any error
    raises _HangUp instead, since an answer would shift the correlation ids the client expects.
    """
    started = time.perf_counter()
    request = f"API {header.api_key} v{header.api_version} (correlation id {header.correlation_id})"
    try:
        response = await handler(header, body)
    except Exception as exc:
        _log.exception("%s failed", request)
        if unanswerable:
            raise _HangUp(f"{request} with acks=0 failed: {exc}") from exc
        response = error_response(header.api_key, body, ErrorCode.UNKNOWN_SERVER_ERROR)
    if metrics is not None:
        metrics.request_answered(header.api_key, time.perf_counter() - started)
    if response is None:
        return None
    if unanswerable:
        raise _HangUp(f"{request} with acks=0 was refused: {_first_error(response)}")
    try:
        return encode_response(header, response)
    except Exception as exc:
        _log.exception("%s: encoding the response failed", request)
        try:
            fallback = error_response(header.api_key, body, ErrorCode.UNKNOWN_SERVER_ERROR)
            return encode_response(header, fallback)
        except Exception:
            raise _HangUp(f"{request}: no response could be encoded ({exc})") from exc


def _first_error(response: Any) -> str:
    """The first partition error code of a Produce response, by name."""
    for topic in getattr(response, "responses", ()):
        for partition in topic.partition_responses:
            if partition.error_code:
                code = ErrorCode.for_code(partition.error_code)
                return f"{code.name} for {topic.name}-{partition.index}"
    return "an error"


def _peer_name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


def _client_host(writer: asyncio.StreamWriter) -> str:
    """The client's address as Kafka shows it in DescribeGroups (``/127.0.0.1``)."""
    peer = writer.get_extra_info("peername")
    return f"/{peer[0]}" if isinstance(peer, tuple) else ""


def _discard(answer: Awaitable[bytes | None]) -> None:
    """Drop an answer that will not be sent: one not started yet never starts."""
    if asyncio.iscoroutine(answer):
        answer.close()


class _Connection:
    """One client connection: a read loop, and a write loop answering in request order."""

    def __init__(
        self, broker: Broker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.broker = broker
        self.reader = reader
        self.writer = writer
        self.peer = _peer_name(writer)
        self.context = RequestContext(client_host=_client_host(writer))
        self.done = asyncio.Event()
        self._queue: asyncio.Queue[Awaitable[bytes | None] | None] = asyncio.Queue(
            broker.config.max_in_flight
        )
        self._read_task: asyncio.Task[None] | None = None
        self._waiting_since: float | None = None  # loop time the read loop began waiting
        self._idle_timer: asyncio.TimerHandle | None = None
        self._stopping = False
        self._broken = False

    def stop_reading(self) -> None:
        """Read no more requests; the ones read are still answered."""
        self._stopping = True
        if self._read_task is not None and self._waiting_since is not None:
            self._read_task.cancel()  # else the loop stops once its request is queued

    def abort(self) -> None:
        self.writer.transport.abort()

    def _hang_up(self, reason: str | None) -> None:
        """Stop reading and writing and drop the connection; what was read and started still
        runs, its answers are not sent. ``reason`` (None: the peer went away) is logged."""
        if reason is not None and not self._broken:
            _log.warning("closing connection from %s: %s", self.peer, reason)
        self._broken = True
        self.stop_reading()
        self.writer.transport.abort()

    async def run(self) -> None:
        serving(self.context)  # this task's requests see the client's address
        write_loop = asyncio.ensure_future(self._write_loop())
        try:
            await self._read_loop(write_loop)
        finally:
            if not write_loop.done():
                await self._queue.put(None)
            with contextlib.suppress(Exception):
                await write_loop
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
            self.done.set()

    async def _read_loop(self, write_loop: asyncio.Future[None]) -> None:
        """Read and dispatch requests until the client stops, sends a bad frame, stays idle
        for ``idle_timeout_s``, or the write loop ends. Frames already received are read with
        no task or timer per frame: one timer checks for idleness."""
        reading = self._read_task = asyncio.ensure_future(self._read_frames(write_loop))
        write_loop.add_done_callback(lambda _: self.stop_reading())
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_later(self.broker.config.idle_timeout_s, self._check_idle)
        try:
            await asyncio.wait([reading])
        finally:
            self._idle_timer.cancel()
            if not reading.done():  # this task was cancelled: so is the read loop
                reading.cancel()
            self._read_task = None

    def _check_idle(self) -> None:
        """The idle timer: stop reading once the read loop has waited ``idle_timeout_s``."""
        timeout = self.broker.config.idle_timeout_s
        loop = asyncio.get_running_loop()
        since = self._waiting_since
        if since is not None and loop.time() - since >= timeout:
            if not self._stopping:
                _log.info("closing connection from %s: idle for %ss", self.peer, timeout)
            self.stop_reading()
            return
        due = (since if since is not None else loop.time()) + timeout
        self._idle_timer = loop.call_at(due, self._check_idle)

    async def _read_frames(self, write_loop: asyncio.Future[None]) -> None:
        config = self.broker.config
        loop = asyncio.get_running_loop()
        reader = self.reader
        while not self._stopping and not write_loop.done():
            self._waiting_since = loop.time()
            try:
                frame = await read_frame(reader, config.max_request_size)
            except ProtocolError as exc:
                _log.warning("closing connection from %s: %s", self.peer, exc)
                return
            except (ConnectionError, OSError):
                return
            finally:
                self._waiting_since = None
            if frame is None:
                return
            try:
                answer = self.broker.dispatch(frame)
            except ProtocolError as exc:
                _log.warning("closing connection from %s: %s", self.peer, exc)
                return
            if not await self._enqueue(answer, write_loop):
                return

    async def _enqueue(
        self, answer: Awaitable[bytes | None], write_loop: asyncio.Future[None]
    ) -> bool:
        """Queue ``answer`` for the write loop, waiting while ``max_in_flight`` are queued;
        False when the write loop ended first (the answer is dropped)."""
        if not self._queue.full():
            self._queue.put_nowait(answer)
            return True
        put = asyncio.ensure_future(self._queue.put(answer))
        await asyncio.wait([put, write_loop], return_when=asyncio.FIRST_COMPLETED)
        if put.done():
            return True
        put.cancel()
        _discard(answer)
        return False

    async def _write_loop(self) -> None:
        """Write the answers in request order. Answers already done when their turn comes
        (pipelined requests) go out together in one write; nothing waits behind an answer
        that is not done yet."""
        queue = self._queue
        held: list[bytes] = []  # small frames answered and not written yet
        while True:
            if held and queue.empty():
                await self._write(held)
            answer = await queue.get()
            if held and (answer is None or not _is_done(answer)):
                await self._write(held)
            if answer is None:
                return
            if self._broken and asyncio.iscoroutine(answer):
                _discard(answer)
                continue
            try:
                frame = await answer
            except _HangUp as exc:
                await self._write(held)
                self._hang_up(str(exc))
                continue
            except Exception as exc:  # a bug: never leave the connection hanging on it
                await self._write(held)
                _log.exception("answering a request from %s failed", self.peer)
                self._hang_up(f"a request could not be answered: {exc}")
                continue
            if frame is None or self._broken:
                continue  # once the peer is gone, what was read is still processed, not sent
            if len(frame) >= _COALESCE_BYTES:
                await self._write(held)
                await self._write([frame])
            else:
                held.append(frame)
                if len(held) >= _COALESCE_FRAMES:
                    await self._write(held)

    async def _write(self, frames: list[bytes]) -> None:
        """Write ``frames`` (emptying the list) and wait while the client is not reading."""
        if not frames:
            return
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        frames.clear()
        if self._broken:
            return
        self.writer.write(data)
        transport = self.writer.transport
        if (
            transport.get_write_buffer_size() <= transport.get_write_buffer_limits()[1]
            and not transport.is_closing()
        ):
            return  # below the high-water mark: drain would return at once
        timeout = self.broker.config.idle_timeout_s
        try:
            await asyncio.wait_for(self.writer.drain(), timeout)
        except TimeoutError:
            self._hang_up(f"it read nothing of a response for {timeout}s")
        except (ConnectionError, OSError):
            self._hang_up(None)


_COALESCE_BYTES = 64 * 1024
"""A response at least this large is written on its own (joining it would copy it)."""
_COALESCE_FRAMES = 64
"""At most this many answers go out in one write."""


def _is_done(answer: Awaitable[bytes | None]) -> bool:
    return isinstance(answer, asyncio.Future) and answer.done()
