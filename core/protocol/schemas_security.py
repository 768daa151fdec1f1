"""Schemas of the APIs that authenticate a connection: SaslHandshake and SaslAuthenticate.

Written from the Kafka protocol documentation (KIP-43 and KIP-152), one
:class:`~.schema.ApiSchema` per API. Only the network client speaks them: the millstream broker
neither advertises nor serves them (see ``CLIENT_ONLY`` in :mod:`.registry`).
"""

from __future__ import annotations

from .schema import ApiSchema, array, field

__all__ = ["SASL_AUTHENTICATE", "SASL_HANDSHAKE"]

SASL_HANDSHAKE = ApiSchema(
    17,
    "SaslHandshake",
    "0-1",
    request=(field("mechanism", "string", "0+"),),
    response=(
        field("error_code", "int16", "0+"),
        array("mechanisms", "string", "0+"),
    ),
)
"""v1: the mechanism's messages follow in SaslAuthenticate requests (v0: as raw frames)."""

SASL_AUTHENTICATE = ApiSchema(
    36,
    "SaslAuthenticate",
    "0-2",
    flexible="2+",
    request=(field("auth_bytes", "bytes", "0+"),),
    response=(
        field("error_code", "int16", "0+"),
        field("error_message", "string", "0+", nullable="0+", default=None),
        field("auth_bytes", "bytes", "0+"),
        field("session_lifetime_ms", "int64", "1+"),
    ),
)
"""v1 adds the session lifetime of KIP-368 (0: the session does not expire)."""
