"""The Kafka wire protocol: pure encoding and decoding, shared by the broker and the client.

Schemas describe each API as data (:mod:`.schema`, :mod:`.schemas_admin`, :mod:`.schemas_log`,
:mod:`.schemas_groups`, :mod:`.schemas_security`); one generic codec (:mod:`.codec`) compiles
them per version; the registry (:mod:`.registry`) turns frames into headers and messages and
back. This package knows nothing of the log or of sockets; see docs/protocol.md.
"""

from .codec import MessageCodec
from .error_codes import ErrorCode
from .framing import DEFAULT_MAX_FRAME_SIZE, frame, frame_size, read_frame, split_frames
from .headers import RequestHeader, ResponseHeader, decode_request_header
from .message import Message
from .registry import (
    API_KEYS,
    CLIENT_ONLY,
    SUPPORTED_VERSIONS,
    ApiKey,
    VersionSupport,
    advertised_api_keys,
    api_versions_fallback,
    decode_request,
    decode_request_body,
    decode_response,
    encode_request,
    encode_response,
    request_class,
    request_header_version,
    request_schema,
    response_class,
    response_correlation_id,
    response_header_version,
    response_schema,
)
from .schema import ApiSchema, Field

__all__ = [
    "API_KEYS",
    "CLIENT_ONLY",
    "DEFAULT_MAX_FRAME_SIZE",
    "SUPPORTED_VERSIONS",
    "ApiKey",
    "ApiSchema",
    "ErrorCode",
    "Field",
    "Message",
    "MessageCodec",
    "RequestHeader",
    "ResponseHeader",
    "VersionSupport",
    "advertised_api_keys",
    "api_versions_fallback",
    "decode_request",
    "decode_request_body",
    "decode_request_header",
    "decode_response",
    "encode_request",
    "encode_response",
    "frame",
    "frame_size",
    "read_frame",
    "request_class",
    "request_header_version",
    "request_schema",
    "response_class",
    "response_correlation_id",
    "response_header_version",
    "response_schema",
    "split_frames",
]
