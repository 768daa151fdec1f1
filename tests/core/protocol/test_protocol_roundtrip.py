"""decode(encode(x)) == x for every schema, version and direction, with values drawn from the
schema itself; whole frames (header + body) survive the trip too, and every strict prefix of an
encoding is refused with a ProtocolError naming the message."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from millstream.core.errors import ProtocolError
from millstream.core.protocol import (
    Message,
    RequestHeader,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    response_correlation_id,
)

Messages = Callable[[type[Message], int], st.SearchStrategy[Message]]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    correlation_id=st.integers(-(2**31), 2**31 - 1),
    client_id=st.none() | st.text(max_size=10),
)
def test_round_trip(
    described, messages: Messages, data: st.DataObject, correlation_id: int, client_id: str | None
) -> None:
    codec = described.codec
    message = data.draw(messages(codec.message_class, described.version))

    encoded = codec.encode(message)
    decoded, end = codec.decode(encoded)
    assert end == len(encoded)
    assert decoded == message
    assert codec.encode(decoded) == encoded

    header = RequestHeader(described.key, described.version, correlation_id, client_id)
    if described.kind == "request":
        frame = encode_request(header, message)
        assert int.from_bytes(frame[:4], "big") == len(frame) - 4
        assert decode_request(frame[4:]) == (header, message)
    else:
        frame = encode_response(header, message)
        assert int.from_bytes(frame[:4], "big") == len(frame) - 4
        assert response_correlation_id(frame[4:]) == correlation_id
        got_header, got = decode_response(described.key, described.version, frame[4:])
        assert (got_header.correlation_id, got) == (correlation_id, message)

    cut = data.draw(st.integers(0, len(encoded) - 1), label="cut") if encoded else None
    if cut is not None:
        with pytest.raises(ProtocolError, match=f"{described.name} v{described.version}"):
            codec.decode_all(encoded[:cut])
