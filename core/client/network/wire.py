"""One TCP connection to one broker: pipelined requests matched to responses by correlation id.

:class:`BrokerConnection` writes each request as soon as it is made and keeps a future per
correlation id; one reader task decodes responses as they arrive (a broker answers the requests
of a connection in order, but nothing here relies on it). When the connection opens it asks
the broker's API versions (ApiVersions v3, falling back to the version the broker names when it
answers UNSUPPORTED_VERSION in v0) and from then on speaks, per API, the highest version both
sides know: the same client talks to a millstream broker and to Apache Kafka.

With :class:`~.security.SecuritySettings` asking for them, the connection is wrapped in TLS
before anything is sent, and authenticated with SASL after ApiVersions (SaslHandshake v1, then
the mechanism's messages in SaslAuthenticate requests, KIP-152) before it is handed out. A
broker that refuses the credentials, or whose certificate cannot be verified, raises
:class:`~millstream.core.errors.AuthenticationError`, which is not retried. When the broker
gives the session a lifetime (KIP-368), the connection counts as closed once 85% of it has
passed, so the cluster opens (and authenticates) a new one before the broker would close it.

A lost connection fails every pending request with :class:`BrokerUnavailableError`; the caller
(the cluster) opens a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import ssl
import struct
import time
from typing import Any

from ...errors import AuthenticationError, ProtocolError, StoreError
from ...protocol import (
    API_KEYS,
    ApiKey,
    ErrorCode,
    RequestHeader,
    decode_response,
    encode_request,
    read_frame,
    request_class,
    response_correlation_id,
)
from .security import SecuritySettings, sasl_mechanism

__all__ = ["BrokerConnection", "BrokerUnavailableError"]

log = logging.getLogger(__name__)

_ERROR_AT = struct.Struct(">h")
_CLIENT_SOFTWARE = "millstream"
_SESSION_SHARE = 0.85
"""The share of a SASL session's lifetime after which the connection is replaced."""


class BrokerUnavailableError(StoreError):
    """A broker could not be reached, or the connection to it was lost (retriable)."""


class BrokerConnection:
    """A connection to the broker at ``host:port`` (``node_id`` -1 for a bootstrap address)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str,
        node_id: int = -1,
        security: SecuritySettings | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.node_id = node_id
        self.client_id = client_id
        self.security = security or SecuritySettings()
        self._session_ends: float | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, tuple[int, int, asyncio.Future[Any]]] = {}
        self._ids = itertools.count(1)
        self._versions: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._lost: BaseException | None = None
        self._answered = False
        """Whether the broker has answered a request other than ApiVersions."""
        self.timeout_s = 30.0
        """How long a request may wait for its answer (Kafka's ``request.timeout.ms``)."""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        """Open, not lost, and its SASL session (if it has a lifetime) not about to end."""
        return self._writer is not None and self._lost is None and not self._session_ending()

    def _session_ending(self) -> bool:
        return self._session_ends is not None and time.monotonic() >= self._session_ends

    async def open(self, timeout_s: float = 10.0) -> None:
        """Connect (with TLS when asked), negotiate API versions and authenticate (SASL when
        asked). BrokerUnavailableError when the broker cannot be reached or does not answer
        in time (retriable); AuthenticationError when it refuses the credentials or its
        certificate cannot be verified (not)."""
        context = self.security.ssl_context
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=context,
                    server_hostname=self.host if context is not None else None,
                ),
                timeout_s,
            )
        except ssl.SSLCertVerificationError as exc:
            raise AuthenticationError(
                f"TLS: the certificate of broker {self.address} cannot be verified: "
                f"{(exc.verify_message or exc.reason).rstrip('.')}; {_certificate_hint(exc)}"
            ) from None
        except (OSError, TimeoutError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
            if context is not None and not isinstance(
                exc, ConnectionRefusedError | socket.gaierror | TimeoutError
            ):
                reason = getattr(exc, "reason", None) or exc.strerror or "the connection was closed"
                raise BrokerUnavailableError(
                    f"TLS handshake with broker {self.address} failed: {reason}; is it a TLS "
                    f"listener? (security.protocol={self.security.protocol} asks for TLS)"
                ) from None
            raise BrokerUnavailableError(
                f"cannot connect to broker {self.address}: {reason}; is a Kafka protocol broker "
                "(millstream broker or Apache Kafka) listening there?"
            ) from None
        self._task = asyncio.get_running_loop().create_task(
            self._read_responses(), name=f"millstream-broker-{self.address}"
        )
        try:
            await asyncio.wait_for(self._negotiate(), timeout_s)
        except TimeoutError:
            await self.close()
            raise BrokerUnavailableError(
                f"broker {self.address} accepted the connection but did not answer ApiVersions "
                f"within {timeout_s:g} s; is it a Kafka broker, and is it responsive?"
            ) from None
        except BaseException:
            await self.close()
            raise
        if not self.security.sasl:
            return
        try:
            await asyncio.wait_for(self._authenticate(), timeout_s)
        except TimeoutError:
            await self.close()
            raise BrokerUnavailableError(
                f"broker {self.address} did not finish SASL authentication within {timeout_s:g} s"
            ) from None
        except BaseException:
            await self.close()
            raise

    async def _authenticate(self) -> None:
        """SaslHandshake v1 naming the mechanism, then its messages in SaslAuthenticate."""
        security = self.security
        assert security.mechanism is not None
        failed = f"SASL authentication as {security.username!r} failed at broker {self.address}"
        if (
            self._versions.get(ApiKey.SASL_HANDSHAKE, 0) < 1
            or ApiKey.SASL_AUTHENTICATE not in self._versions
        ):
            raise AuthenticationError(
                f"{failed}: the broker does not offer SASL authentication (no SaslHandshake v1 "
                "and SaslAuthenticate among its APIs; a millstream broker speaks neither SASL "
                "nor TLS); drop USER:PASSWORD@ and security.protocol from the store URL"
            )
        handshake = request_class(ApiKey.SASL_HANDSHAKE)(mechanism=security.mechanism)
        answer = await self.request(ApiKey.SASL_HANDSHAKE, handshake, version=1)
        code = ErrorCode.for_code(answer.error_code)
        if code == ErrorCode.UNSUPPORTED_SASL_MECHANISM:
            enabled = ", ".join(answer.mechanisms) or "none"
            raise AuthenticationError(
                f"{failed}: it does not enable sasl.mechanism={security.mechanism}; it "
                f"enables: {enabled}"
            )
        if code != ErrorCode.NONE:
            raise AuthenticationError(
                f"{failed}: SaslHandshake answered {code.name}; is {self.address} a SASL listener?"
            )
        mechanism = sasl_mechanism(security)
        message: bytes | None = mechanism.start()
        request = request_class(ApiKey.SASL_AUTHENTICATE)
        while message is not None:
            answer = await self.request(ApiKey.SASL_AUTHENTICATE, request(auth_bytes=message))
            if answer.error_code:
                reason = answer.error_message or ErrorCode.for_code(answer.error_code).name
                raise AuthenticationError(f"{failed}: {reason}")
            try:
                message = mechanism.answer(answer.auth_bytes)
            except AuthenticationError as exc:
                raise AuthenticationError(f"{failed}: {exc}") from None
            if answer.session_lifetime_ms > 0:
                share = answer.session_lifetime_ms / 1000 * _SESSION_SHARE
                self._session_ends = time.monotonic() + share

    async def _negotiate(self) -> None:
        """Learn the broker's API versions: v3 first, else the version it says it serves."""
        low, high = API_KEYS[ApiKey.API_VERSIONS].versions.low, 3
        body = request_class(ApiKey.API_VERSIONS)(
            client_software_name=_CLIENT_SOFTWARE, client_software_version="1"
        )
        version = high
        for _ in range(2):
            answer = await self.request(ApiKey.API_VERSIONS, body, version=version)
            if answer.error_code == ErrorCode.UNSUPPORTED_VERSION:
                theirs = {e.api_key: e.max_version for e in answer.api_keys}
                version = max(low, min(high, theirs.get(ApiKey.API_VERSIONS, 0)))
                continue
            if answer.error_code:
                raise BrokerUnavailableError(
                    f"broker {self.address} refused ApiVersions: "
                    f"{ErrorCode.for_code(answer.error_code).name}"
                )
            versions = {}
            for entry in answer.api_keys:
                schema = API_KEYS.get(entry.api_key)
                if schema is None:
                    continue
                top = min(entry.max_version, schema.versions.high)
                if top >= max(entry.min_version, schema.versions.low):
                    versions[entry.api_key] = top
            self._versions = versions
            return
        raise BrokerUnavailableError(f"broker {self.address} shares no ApiVersions version")

    def version(self, api_key: int) -> int:
        """The highest version of ``api_key`` both sides speak; StoreError when none."""
        found = self._versions.get(api_key)
        if found is None:
            name = ApiKey(api_key).name if api_key in API_KEYS else str(api_key)
            raise StoreError(
                f"broker {self.address} does not speak {name} in a version this client knows"
            )
        return found

    def supports(self, api_key: int) -> bool:
        return api_key in self._versions

    async def request(
        self,
        api_key: int,
        body: Any,
        *,
        version: int | None = None,
        expect_response: bool = True,
        timeout_s: float | None = None,
    ) -> Any:
        """Send ``body`` as a request of ``api_key`` (in the negotiated version unless given)
        and return the decoded response body (None when ``expect_response`` is False).

        A broker that does not answer within ``timeout_s`` (default :attr:`timeout_s`) is
        taken for lost: the connection is closed, failing every request pending on it with
        BrokerUnavailableError (the caller retries on a new one)."""
        future = self.send(api_key, body, version=version, expect_response=expect_response)
        if future is None:
            return None
        return await self.response(api_key, future, timeout_s=timeout_s)

    async def response(
        self, api_key: int, future: asyncio.Future[Any], *, timeout_s: float | None = None
    ) -> Any:
        """The response body of a request of ``api_key`` written with :meth:`send`, waited for
        as :meth:`request` does (the connection is taken for lost after ``timeout_s``)."""
        limit = self.timeout_s if timeout_s is None else timeout_s
        try:
            return await asyncio.wait_for(asyncio.shield(future), limit)
        except TimeoutError:
            self._fail_all(
                BrokerUnavailableError(
                    f"broker {self.address} did not answer {ApiKey(api_key).name} within "
                    f"{limit:g} s"
                )
            )
            return await future

    def send(
        self, api_key: int, body: Any, *, version: int | None = None, expect_response: bool = True
    ) -> asyncio.Future[Any] | None:
        """Write a request now and return the future of its response body (pipelining)."""
        writer = self._writer
        if writer is None or self._lost is not None:
            raise BrokerUnavailableError(
                f"the connection to broker {self.address} is closed"
                + (f" ({self._lost})" if self._lost else "")
            )
        if self._session_ending():
            raise BrokerUnavailableError(
                f"the SASL session with broker {self.address} is about to end; the client "
                "connects again"
            )
        if version is None:
            version = self.version(api_key)
        correlation = next(self._ids) & 0x7FFFFFFF
        header = RequestHeader(api_key, version, correlation, self.client_id)
        frame = encode_request(header, body)
        future: asyncio.Future[Any] | None = None
        if expect_response:
            future = asyncio.get_running_loop().create_future()
            self._pending[correlation] = (api_key, version, future)
        writer.write(frame)
        return future

    async def drain(self) -> None:
        """Wait until the written requests are handed to the OS (backpressure)."""
        if self._writer is not None:
            try:
                await self._writer.drain()
            except (OSError, RuntimeError) as exc:
                self._fail_all(BrokerUnavailableError(f"broker {self.address}: {exc}"))

    async def _read_responses(self) -> None:
        assert self._reader is not None
        reason: BaseException
        try:
            while True:
                frame = await read_frame(self._reader)
                if frame is None:
                    reason = BrokerUnavailableError(
                        f"broker {self.address} closed the connection{self._security_hint()}"
                    )
                    break
                correlation = response_correlation_id(frame)
                entry = self._pending.pop(correlation, None)
                if entry is None:
                    log.warning(
                        "broker %s answered unknown correlation id %d", self.address, correlation
                    )
                    continue
                api_key, version, future = entry
                self._answered = self._answered or api_key != ApiKey.API_VERSIONS
                if future.done():
                    continue
                try:
                    if api_key == ApiKey.API_VERSIONS and _is_unsupported(frame):
                        _, body = decode_response(api_key, 0, frame)
                    else:
                        _, body = decode_response(api_key, version, frame)
                except ProtocolError as exc:
                    future.set_exception(exc)
                    continue
                future.set_result(body)
        except asyncio.CancelledError:
            reason = BrokerUnavailableError(f"the connection to broker {self.address} was closed")
        except ssl.SSLError as exc:
            reason = self._tls_failure(exc)
        except (OSError, ProtocolError) as exc:
            hint = self._security_hint(unreadable=isinstance(exc, ProtocolError))
            reason = BrokerUnavailableError(
                f"lost the connection to broker {self.address}: {exc}{hint}"
            )
        self._fail_all(reason)

    def _security_hint(self, *, unreadable: bool = False) -> str:
        """A hint for a broker that ended the connection before answering anything but
        ApiVersions to a client that asked for no TLS: a TLS listener answers the first
        request with an alert, ``unreadable`` as a frame; a SASL listener (one offering
        SaslHandshake) answers ApiVersions, then closes at the next request of a client that
        asked for no SASL."""
        if self._answered or self.security.tls:
            return ""
        tls_alert = unreadable and not self._versions
        sasl_refusal = (
            not unreadable and not self.security.sasl and ApiKey.SASL_HANDSHAKE in self._versions
        )
        if not (tls_alert or sasl_refusal):
            return ""
        return " (does the listener need SASL or TLS? see security.protocol)"

    def _tls_failure(self, exc: ssl.SSLError) -> BaseException:
        """A TLS alert from the broker: AuthenticationError when it is about the client's
        certificate (none, or one it does not trust), which trying again cannot fix."""
        alert = str(exc.reason or exc)
        if "CERTIFICATE" not in alert.upper():
            return BrokerUnavailableError(f"lost the connection to broker {self.address}: {exc}")
        given = self.security.certificate_location
        fix = (
            f"does it trust the one in ssl.certificate.location ({given!r})?"
            if given
            else "it may require one: set ssl.certificate.location and ssl.key.location"
        )
        return AuthenticationError(
            f"TLS: broker {self.address} refused the client's certificate ({alert}); {fix}"
        )

    def _fail_all(self, reason: BaseException) -> None:
        if self._lost is None:
            self._lost = reason
        pending, self._pending = self._pending, {}
        for _, _, future in pending.values():
            if not future.done():
                future.set_exception(reason)
                future.exception()  # a waiter may be gone: do not warn about it
        if self._writer is not None:
            self._writer.close()

    async def close(self) -> None:
        """Close the connection; pending requests fail. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._fail_all(BrokerUnavailableError(f"the connection to broker {self.address} is closed"))
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(OSError, RuntimeError):
                await writer.wait_closed()

    def __repr__(self) -> str:
        return f"<BrokerConnection node {self.node_id} {self.address}>"


def _is_unsupported(frame: bytes) -> bool:
    """Whether an ApiVersions response frame carries UNSUPPORTED_VERSION (its first field in
    every version, after the 4-byte correlation id of header v0)."""
    return len(frame) >= 6 and _ERROR_AT.unpack_from(frame, 4)[0] == ErrorCode.UNSUPPORTED_VERSION


def _certificate_hint(exc: ssl.SSLCertVerificationError) -> str:
    """What to change in the store URL for a certificate that was refused."""
    if exc.verify_code in (62, 64):  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
        return (
            "connect by a name the certificate holds, or set "
            "ssl.endpoint.identification.algorithm=none"
        )
    return "set ssl.ca.location to the PEM file of the CA that signed it"
