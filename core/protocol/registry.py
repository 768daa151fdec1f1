"""Every API millstream speaks: schemas by key, the versions advertised and served, and the
functions that turn frames into (header, message) and back.

Three version ranges matter per API:

- described (``API_KEYS[key].versions``): what the codec can encode and decode;
- advertised (``SUPPORTED_VERSIONS[key].advertised``): what the broker lists in ApiVersions;
- served (``SUPPORTED_VERSIONS[key].served``): what the broker answers normally. Produce is
  advertised 0–8 but served 3–8 (older librdkafka enables compression only when Produce v0 is
  advertised); a v0–v2 Produce is answered with UNSUPPORTED_VERSION.

The APIs of :data:`CLIENT_ONLY` (SASL) are described for the network client and have no
entry in ``SUPPORTED_VERSIONS``: the broker neither advertises nor serves them.

Frames given to the ``decode_*`` functions are the bytes after the size prefix (what
:func:`~.framing.read_frame` returns); the ``encode_*`` functions return whole frames, size
prefix included, ready to write. Messages are compiled for a version on first use and cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from ..errors import ProtocolError
from .codec import MessageCodec, compile_message
from .error_codes import ErrorCode
from .framing import frame
from .headers import (
    RequestHeader,
    ResponseHeader,
    decode_request_header,
    decode_response_header,
    encode_request_header,
    encode_response_header,
    skip_tagged_fields,
)
from .message import Message, make_message_class
from .schema import ApiSchema
from .schemas_admin import (
    ALTER_CONFIGS,
    API_VERSIONS,
    CREATE_PARTITIONS,
    CREATE_TOPICS,
    DELETE_TOPICS,
    DESCRIBE_CONFIGS,
    DESCRIBE_LOG_DIRS,
    METADATA,
)
from .schemas_groups import (
    DELETE_GROUPS,
    DESCRIBE_GROUPS,
    FIND_COORDINATOR,
    HEARTBEAT,
    JOIN_GROUP,
    LEAVE_GROUP,
    LIST_GROUPS,
    OFFSET_COMMIT,
    OFFSET_FETCH,
    SYNC_GROUP,
)
from .schemas_log import (
    FETCH,
    INIT_PRODUCER_ID,
    LIST_OFFSETS,
    OFFSET_FOR_LEADER_EPOCH,
    PRODUCE,
)
from .schemas_security import SASL_AUTHENTICATE, SASL_HANDSHAKE

__all__ = [
    "API_KEYS",
    "CLIENT_ONLY",
    "SUPPORTED_VERSIONS",
    "ApiKey",
    "VersionSupport",
    "advertised_api_keys",
    "api_versions_fallback",
    "decode_request",
    "decode_request_body",
    "decode_response",
    "encode_request",
    "encode_response",
    "request_class",
    "request_header_version",
    "request_schema",
    "response_class",
    "response_correlation_id",
    "response_header_version",
    "response_schema",
]


class ApiKey(IntEnum):
    """The API keys described here, by Kafka's names."""

    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    DESCRIBE_GROUPS = 15
    LIST_GROUPS = 16
    SASL_HANDSHAKE = 17
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    INIT_PRODUCER_ID = 22
    OFFSET_FOR_LEADER_EPOCH = 23
    DESCRIBE_CONFIGS = 32
    ALTER_CONFIGS = 33
    DESCRIBE_LOG_DIRS = 35
    SASL_AUTHENTICATE = 36
    CREATE_PARTITIONS = 37
    DELETE_GROUPS = 42


API_KEYS: dict[int, ApiSchema] = {
    schema.key: schema
    for schema in (
        PRODUCE,
        FETCH,
        LIST_OFFSETS,
        METADATA,
        OFFSET_COMMIT,
        OFFSET_FETCH,
        FIND_COORDINATOR,
        JOIN_GROUP,
        HEARTBEAT,
        LEAVE_GROUP,
        SYNC_GROUP,
        DESCRIBE_GROUPS,
        LIST_GROUPS,
        SASL_HANDSHAKE,
        API_VERSIONS,
        CREATE_TOPICS,
        DELETE_TOPICS,
        INIT_PRODUCER_ID,
        OFFSET_FOR_LEADER_EPOCH,
        DESCRIBE_CONFIGS,
        ALTER_CONFIGS,
        DESCRIBE_LOG_DIRS,
        SASL_AUTHENTICATE,
        CREATE_PARTITIONS,
        DELETE_GROUPS,
    )
}
"""API key → its schema."""


@dataclass(frozen=True, slots=True)
class VersionSupport:
    """The versions of one API the broker advertises and the ones it serves (inclusive)."""

    advertised: tuple[int, int]
    served: tuple[int, int]

    def serves(self, version: int) -> bool:
        """Whether a request in ``version`` gets a normal answer."""
        return self.served[0] <= version <= self.served[1]


def _support(schema: ApiSchema) -> VersionSupport:
    described = (schema.versions.low, schema.versions.high)
    if schema.key == ApiKey.PRODUCE:
        return VersionSupport(advertised=described, served=(3, described[1]))
    return VersionSupport(advertised=described, served=described)


CLIENT_ONLY: frozenset[int] = frozenset({ApiKey.SASL_HANDSHAKE, ApiKey.SASL_AUTHENTICATE})
"""The APIs only the network client speaks (to Kafka's SASL listeners); the broker does not
serve them, so they are not in :data:`SUPPORTED_VERSIONS`."""

SUPPORTED_VERSIONS: dict[int, VersionSupport] = {
    key: _support(schema) for key, schema in API_KEYS.items() if key not in CLIENT_ONLY
}
"""API key → the versions advertised and served."""


# -- message classes and compiled codecs ----------------------------------------------------

_MODULE = __name__
_CLASSES: dict[tuple[int, str], type[Message]] = {}
_CODECS: dict[tuple[int, int, str], MessageCodec] = {}


def _schema(api_key: int) -> ApiSchema:
    try:
        return API_KEYS[api_key]
    except KeyError:
        raise ProtocolError(
            f"unknown API key {api_key}; known: {', '.join(map(str, sorted(API_KEYS)))}"
        ) from None


def _message_class(api_key: int, kind: str) -> type[Message]:
    cls = _CLASSES.get((api_key, kind))
    if cls is None:
        schema = _schema(api_key)
        name = f"{schema.name}{kind.capitalize()}"
        fields = schema.request if kind == "request" else schema.response
        cls = _CLASSES[(api_key, kind)] = make_message_class(name, fields, _MODULE)
    return cls


def request_class(api_key: int) -> type[Message]:
    """The request class of ``api_key`` (all versions' fields), e.g. ``MetadataRequest``."""
    return _message_class(api_key, "request")


def response_class(api_key: int) -> type[Message]:
    """The response class of ``api_key``, e.g. ``MetadataResponse``; nested classes hang off it."""
    return _message_class(api_key, "response")


def _codec(api_key: int, version: int, kind: str) -> MessageCodec:
    codec = _CODECS.get((api_key, version, kind))
    if codec is None:
        schema = _schema(api_key)
        if version not in schema.versions:
            raise ProtocolError(
                f"unsupported {schema.name} version {version}; supported: {schema.versions}"
            )
        codec = compile_message(
            _message_class(api_key, kind),
            version,
            schema.is_flexible(version),
            f"{schema.name} v{version} {kind}",
        )
        _CODECS[(api_key, version, kind)] = codec
    return codec


def request_schema(api_key: int, version: int) -> MessageCodec:
    """The compiled request of ``api_key`` in ``version``; unknown ones raise ProtocolError."""
    return _codec(api_key, version, "request")


def response_schema(api_key: int, version: int) -> MessageCodec:
    """The compiled response of ``api_key`` in ``version``; unknown ones raise ProtocolError."""
    return _codec(api_key, version, "response")


# -- header versions ----------------------------------------------------------------------------


def request_header_version(api_key: int, api_version: int) -> int:
    """2 for a flexible request version, else 1."""
    return 2 if _schema(api_key).is_flexible(api_version) else 1


def response_header_version(api_key: int, api_version: int) -> int:
    """1 for a flexible response version, else 0; ApiVersions responses always use 0."""
    if api_key == ApiKey.API_VERSIONS:
        return 0
    return 1 if _schema(api_key).is_flexible(api_version) else 0


# -- requests -------------------------------------------------------------------------------------


def encode_request(header: RequestHeader, body: Any) -> bytes:
    """The size-prefixed frame of ``body`` sent with ``header`` (its key and version decide)."""
    codec = request_schema(header.api_key, header.api_version)
    buf = bytearray(4)
    encode_request_header(buf, header, request_header_version(header.api_key, header.api_version))
    codec.encode_into(buf, body)
    buf[0:4] = (len(buf) - 4).to_bytes(4, "big")
    return bytes(buf)


def decode_request(frame: bytes) -> tuple[RequestHeader, Any]:
    """The header and body of a request frame (the bytes after the size prefix).

    An unknown API key or version, a malformed body or bytes left over raise ProtocolError.
    A broker that must answer unknown versions (ApiVersions) reads the header first with
    :func:`~.headers.decode_request_header` and then calls :func:`decode_request_body`.
    """
    header, pos = decode_request_header(frame)
    codec = request_schema(header.api_key, header.api_version)
    if codec.flexible:
        pos = skip_tagged_fields(frame, pos)
    return header, codec.decode_all(frame, pos)


def decode_request_body(header: RequestHeader, frame: bytes) -> Any:
    """The body of a request frame whose header was read already (by ``decode_request_header``)."""
    codec = request_schema(header.api_key, header.api_version)
    _, pos = decode_request_header(frame, codec.flexible)
    return codec.decode_all(frame, pos)


# -- responses -----------------------------------------------------------------------------------


def encode_response(request: RequestHeader, body: Any) -> bytes:
    """The size-prefixed response frame answering ``request`` (same key, version, correlation)."""
    codec = response_schema(request.api_key, request.api_version)
    buf = bytearray(4)
    encode_response_header(
        buf,
        request.correlation_id,
        response_header_version(request.api_key, request.api_version),
    )
    codec.encode_into(buf, body)
    buf[0:4] = (len(buf) - 4).to_bytes(4, "big")
    return bytes(buf)


def response_correlation_id(frame: bytes) -> int:
    """The correlation id of a response frame: which request it answers (read before decoding)."""
    header, _ = decode_response_header(frame, 0)
    return header.correlation_id


def decode_response(api_key: int, version: int, frame: bytes) -> tuple[ResponseHeader, Any]:
    """The header and body of a response frame to a request of ``api_key`` in ``version``."""
    codec = response_schema(api_key, version)
    header, pos = decode_response_header(frame, response_header_version(api_key, version))
    return header, codec.decode_all(frame, pos)


# -- ApiVersions -------------------------------------------------------------------------------


def advertised_api_keys() -> list[Message]:
    """The ``api_keys`` entries of an ApiVersions response: every API and its advertised range."""
    entry = response_class(ApiKey.API_VERSIONS).ApiKeys  # type: ignore[attr-defined]
    return [
        entry(api_key=key, min_version=support.advertised[0], max_version=support.advertised[1])
        for key, support in sorted(SUPPORTED_VERSIONS.items())
    ]


def api_versions_fallback(request: RequestHeader) -> bytes:
    """The frame answering an ApiVersions request in a version the broker does not serve.

    Encoded in v0 whatever was asked, with header v0, error UNSUPPORTED_VERSION and a single
    entry (ApiVersions and its advertised range), so the client retries in a version it shares.
    """
    response = response_class(ApiKey.API_VERSIONS)
    low, high = SUPPORTED_VERSIONS[ApiKey.API_VERSIONS].advertised
    body = response(
        error_code=ErrorCode.UNSUPPORTED_VERSION,
        api_keys=[response.ApiKeys(ApiKey.API_VERSIONS, low, high)],  # type: ignore[attr-defined]
    )
    buf = bytearray()
    encode_response_header(buf, request.correlation_id, 0)
    response_schema(ApiKey.API_VERSIONS, 0).encode_into(buf, body)
    return frame(buf)
