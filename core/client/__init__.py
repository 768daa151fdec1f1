"""The client interface: one way to reach every store.

``connect(url)`` opens a store by URL and returns a :class:`Connection` that makes producers,
consumers and admins::

    async with await connect("file:./.millstream") as conn:
        async with conn.producer() as producer:
            await producer.send("readings", b'{"temp": 21.5}', key=b"dev-1")

URLs: ``file:DIR`` is the embedded store in directory DIR (the default, ``file:./.millstream``);
``millstream://host:port[,host:port]`` is a millstream broker (or cluster) reached over the
Kafka wire protocol by the network client (:mod:`.network`); ``kafka://host:port`` (Apache
Kafka) goes through the same client.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from ..errors import InvalidStoreURLError
from .interface import (
    Admin,
    BatchDelivery,
    Connection,
    Consumer,
    Delivery,
    GroupDescription,
    GroupMember,
    OffsetReset,
    PartitionDescription,
    PartitionLag,
    PositionStore,
    Producer,
    RecordMetadata,
    TopicDescription,
)

__all__ = [
    "DEFAULT_STORE",
    "Admin",
    "BatchDelivery",
    "Connection",
    "Consumer",
    "Delivery",
    "GroupDescription",
    "GroupMember",
    "OffsetReset",
    "PartitionDescription",
    "PartitionLag",
    "PositionStore",
    "Producer",
    "RecordMetadata",
    "TopicDescription",
    "connect",
    "redact_url",
    "resolve_store_url",
    "store_path",
]

DEFAULT_STORE = "file:./.millstream"
"""The store used when neither a flag nor the environment names one."""

_SCHEMES = ("file:", "millstream://", "kafka://")


def resolve_store_url(
    store: str | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    bootstrap_server: str | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """The store URL to use, by precedence: ``store``, ``data_dir`` (``file:DIR``),
    ``bootstrap_server`` (``millstream://HOST:PORT``), then ``MILLSTREAM_STORE`` and
    ``MILLSTREAM_DATA_DIR`` from ``env``, then :data:`DEFAULT_STORE`."""
    environ = os.environ if env is None else env
    if store:
        return store
    if data_dir:
        return f"file:{os.fspath(data_dir)}"
    if bootstrap_server:
        return f"millstream://{bootstrap_server}"
    if environ.get("MILLSTREAM_STORE"):
        return environ["MILLSTREAM_STORE"]
    if environ.get("MILLSTREAM_DATA_DIR"):
        return f"file:{environ['MILLSTREAM_DATA_DIR']}"
    return DEFAULT_STORE


def redact_url(url: str) -> str:
    """``url`` fit to be shown: the password of its user information masked
    (``millstream://admin:s3cr3t@broker:9092`` → ``millstream://admin:****@broker:9092``).

    Everything else is kept, the query included (``kafka://u:****@b:9092?sasl.mechanism=PLAIN``,
    though an ``ssl.key.password`` in it is masked too), and a URL without a password
    (``file:DIR``, ``kafka://broker:9092``, ``kafka://admin@broker:9092``) is returned as it
    is. A password holding ``@`` or ``/`` is masked whole.
    """
    if "://" not in url:
        return url
    from .network.security import split_store_url

    parts = split_store_url(url)
    if parts is None:
        return url
    shown = url
    if parts.userinfo is not None:
        user, colon, _ = parts.userinfo.partition(":")
        if colon and not any(c in user for c in "/?#"):
            rest = url.partition("://")[2][len(parts.userinfo) :]
            shown = f"{parts.scheme}://{user}:****{rest}"
    return re.sub(r"((?:^|[?&])ssl\.key\.password=)[^&#]*", r"\1****", shown)


def store_path(url: str) -> Path:
    """The directory of a ``file:`` URL (``file:DIR``, ``file://DIR`` or ``file:///abs``)."""
    rest = url[len("file:") :]
    if rest.startswith("//"):
        rest = rest[2:]
    if not rest:
        raise InvalidStoreURLError(f"store URL {url!r} names no directory; e.g. file:./.millstream")
    return Path(rest).expanduser()


async def connect(
    url: str | None = None, *, read_only: bool = False, create: bool = True
) -> Connection:
    """Open the store at ``url`` (default: :func:`resolve_store_url`).

    ``read_only`` opens an embedded store without taking its writer's lock, so it may be read
    while another process writes it; any write then raises ReadOnlyStoreError.

    ``create`` says whether a writable connection to an embedded store may make the store when
    its directory holds none yet. With ``create=False`` such a URL raises StoreError ("no
    millstream store at ...") and nothing is made, which is what a command that only uses an
    existing store wants: a mistyped path is then an error, not a new empty store. A read-only
    connection never makes a store.
    """
    url = url or resolve_store_url()
    if url.startswith("file:"):
        from .embedded import EmbeddedConnection

        return await EmbeddedConnection.open(
            store_path(url), url=url, read_only=read_only, create=create
        )
    if url.startswith(("millstream://", "kafka://")):
        from .network import NetworkConnection

        return await NetworkConnection.open(url)
    raise InvalidStoreURLError(
        f"store URL {url!r} has an unknown scheme; valid: file:DIR, "
        "millstream://HOST:PORT, kafka://HOST:PORT"
    )
