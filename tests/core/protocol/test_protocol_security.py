"""SaslHandshake and SaslAuthenticate: byte for byte what kafka-python's classes (generated from
Kafka's own message definitions) write and read, in every version; and described for the client
only, so the broker's ApiVersions answer stays as it was."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.protocol.sasl import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)

from millstream.core.protocol import (
    API_KEYS,
    CLIENT_ONLY,
    SUPPORTED_VERSIONS,
    ApiKey,
    RequestHeader,
    advertised_api_keys,
    decode_request,
    decode_response,
    encode_request,
    request_class,
    response_class,
    response_schema,
)


def _theirs_framed(request: Any, correlation_id: int, client_id: str) -> bytes:
    request.with_header(correlation_id=correlation_id, client_id=client_id)
    return bytes(request.encode(header=True, framed=True))


@pytest.mark.parametrize("version", [0, 1])
def test_sasl_handshake_request_matches_kafka_python(version: int) -> None:
    theirs = _theirs_framed(
        SaslHandshakeRequest(mechanism="SCRAM-SHA-512", version=version), 5, "kp"
    )
    header, body = decode_request(theirs[4:])
    assert header == RequestHeader(ApiKey.SASL_HANDSHAKE, version, 5, "kp")
    assert body.mechanism == "SCRAM-SHA-512"
    ours = request_class(ApiKey.SASL_HANDSHAKE)(mechanism="SCRAM-SHA-512")
    assert encode_request(header, ours) == theirs


@pytest.mark.parametrize("version", [0, 1])
def test_sasl_handshake_response_matches_kafka_python(version: int) -> None:
    response = response_class(ApiKey.SASL_HANDSHAKE)
    ours = response(error_code=33, mechanisms=["PLAIN", "SCRAM-SHA-256"])
    encoded = response_schema(ApiKey.SASL_HANDSHAKE, version).encode(ours)
    theirs = SaslHandshakeResponse(
        error_code=33, mechanisms=["PLAIN", "SCRAM-SHA-256"], version=version
    )
    assert encoded == bytes(theirs.encode())
    read = SaslHandshakeResponse.decode(encoded, version=version)
    assert (read.error_code, list(read.mechanisms)) == (33, ["PLAIN", "SCRAM-SHA-256"])


@pytest.mark.parametrize("version", [0, 1, 2])
def test_sasl_authenticate_request_matches_kafka_python(version: int) -> None:
    message = b"n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL"
    theirs = _theirs_framed(SaslAuthenticateRequest(auth_bytes=message, version=version), 9, "c")
    header, body = decode_request(theirs[4:])
    assert header == RequestHeader(ApiKey.SASL_AUTHENTICATE, version, 9, "c")
    assert body.auth_bytes == message
    ours = request_class(ApiKey.SASL_AUTHENTICATE)(auth_bytes=message)
    assert encode_request(header, ours) == theirs  # v2: request header v2, compact bytes


@pytest.mark.parametrize("version", [0, 1, 2])
@pytest.mark.parametrize(
    ("error_code", "error_message", "lifetime"),
    [(0, None, 3_600_000), (58, "Authentication failed: Invalid username or password", 0)],
)
def test_sasl_authenticate_response_matches_kafka_python(
    version: int, error_code: int, error_message: str | None, lifetime: int
) -> None:
    response = response_class(ApiKey.SASL_AUTHENTICATE)
    ours = response(
        error_code=error_code,
        error_message=error_message,
        auth_bytes=b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        session_lifetime_ms=lifetime,
    )
    theirs = SaslAuthenticateResponse(
        error_code=error_code,
        error_message=error_message,
        auth_bytes=b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
        session_lifetime_ms=lifetime,
        version=version,
    )
    encoded = response_schema(ApiKey.SASL_AUTHENTICATE, version).encode(ours)
    assert encoded == bytes(theirs.encode(version=version))
    header = b"\x00\x00\x00\x03" + (b"\x00" if version >= 2 else b"")  # correlation, tags
    _, body = decode_response(ApiKey.SASL_AUTHENTICATE, version, header + encoded)
    expected_lifetime = lifetime if version >= 1 else 0  # v0 does not carry it
    assert (body.error_code, body.error_message, body.session_lifetime_ms) == (
        error_code,
        error_message,
        expected_lifetime,
    )


def test_the_sasl_apis_are_described_but_never_advertised_by_the_broker() -> None:
    assert {ApiKey.SASL_HANDSHAKE, ApiKey.SASL_AUTHENTICATE} == CLIENT_ONLY
    assert (API_KEYS[17].versions.low, API_KEYS[17].versions.high) == (0, 1)
    assert (API_KEYS[36].versions.low, API_KEYS[36].versions.high) == (0, 2)
    assert not CLIENT_ONLY & set(SUPPORTED_VERSIONS)
    assert not CLIENT_ONLY & {entry.api_key for entry in advertised_api_keys()}
    assert set(SUPPORTED_VERSIONS) == set(API_KEYS) - CLIENT_ONLY
