"""What the ``kafka`` source and sink share: the other cluster's URL, how it is reached, and
the value formats.

The other cluster is any store millstream's own client opens: Apache Kafka (``kafka://``), a
millstream broker (``millstream://``) or, for completeness, an embedded store in another
folder (``file:DIR``). Its URL may carry a user and password; wherever it is shown (errors,
logs, ``validate``) the password is masked by :func:`~millstream.core.client.redact_url`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_serializer, field_validator

from millstream.core import ConfigError, ConnectorConfig, ConnectorError, StoreError
from millstream.core.client import Connection, connect, redact_url
from millstream.core.codecs import BytesCodec, Codec, JsonCodec, TextCodec

__all__ = ["FORMATS", "ClusterConfig", "open_cluster"]

FORMATS: dict[str, Codec] = {"json": JsonCodec(), "text": TextCodec(), "bytes": BytesCodec()}
"""The codec of each ``format`` setting: how record values are read (source) and written
(sink)."""

Format = Literal["json", "text", "bytes"]

_SCHEMES = ("kafka://", "millstream://", "file:")


class ClusterConfig(ConnectorConfig):
    """The settings of both sides: where the other cluster is."""

    url: str = Field(
        description="the other cluster's store URL: kafka://HOST:PORT[,HOST:PORT] (Apache "
        "Kafka), millstream://HOST:PORT (a millstream broker) or file:DIR (an embedded store); "
        "a password in it is masked wherever the URL is shown",
    )

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(_SCHEMES) or value in _SCHEMES:
            raise ValueError(
                f"{redact_url(value)!r} is not a store URL; valid: kafka://HOST:PORT, "
                "millstream://HOST:PORT or file:DIR"
            )
        return value

    @field_serializer("url")
    def _shown(self, value: str) -> str:
        return redact_url(value)


async def open_cluster(url: str, what: str) -> Connection:
    """A connection to the other cluster; ConnectorError with one line naming ``what`` (the
    connector) and the redacted URL when it cannot be reached, ConfigError naming the ``url``
    setting when the client cannot read the URL."""
    try:
        return await connect(url)
    except ConfigError as exc:  # a URL the client cannot read (no port, a bad option…)
        reason = exc.message.replace(url, redact_url(url))
        raise ConfigError(f"{what}: {reason}", path="config.url") from None
    except StoreError as exc:
        shown = redact_url(url)
        reason = str(exc).replace(url, shown).removeprefix(f"cannot reach {shown}: ")
        raise ConnectorError(f"{what}: url: cannot reach {shown}: {reason}") from None
