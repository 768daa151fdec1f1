"""Topic names: Kafka's rule, checked before a name ever becomes a path on disk."""

from __future__ import annotations

import re

from ..errors import InvalidTopicError

__all__ = ["INTERNAL_TOPICS", "MAX_TOPIC_NAME_LENGTH", "is_internal", "validate_topic_name"]

MAX_TOPIC_NAME_LENGTH = 249

INTERNAL_TOPICS = frozenset(
    {"__consumer_offsets", "__source_positions", "__millstream_producer_ids", "__topic_codecs"}
)
"""The store's own topics: committed group offsets, the positions of pipeline sources, the
blocks of producer ids a broker handed out, and topics' codecs on a cluster that does not keep
them with the topics (Apache Kafka)."""
_LEGAL = re.compile(r"[a-zA-Z0-9._-]+")


def validate_topic_name(name: object) -> str:
    """Return ``name`` if it is a legal topic name, else raise :class:`InvalidTopicError`.

    Legal: 1–249 characters from ``[a-zA-Z0-9._-]``, and neither ``.`` nor ``..``.
    """
    if not isinstance(name, str) or not name:
        raise InvalidTopicError("topic name is empty; use 1-249 characters from [a-zA-Z0-9._-]")
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise InvalidTopicError(
            f"topic name {name[:40]!r}... is {len(name)} characters long; "
            f"the limit is {MAX_TOPIC_NAME_LENGTH}"
        )
    if name in (".", ".."):
        raise InvalidTopicError(f"topic name {name!r} is not allowed; '.' and '..' are reserved")
    if not _LEGAL.fullmatch(name):
        bad = sorted({c for c in name if not _LEGAL.fullmatch(c)})
        raise InvalidTopicError(
            f"topic name {name!r} contains {''.join(bad)!r}; "
            "valid characters are ASCII letters, digits, '.', '_' and '-'"
        )
    return name


def is_internal(name: str) -> bool:
    """True for the store's own topics (:data:`INTERNAL_TOPICS`); other names that start with
    ``__`` are ordinary topics."""
    return name in INTERNAL_TOPICS
