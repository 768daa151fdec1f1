"""Topic configs, by Kafka's names, with millstream's few additions.

A topic keeps only the configs set on it (its *overrides*); every other key reads as its
default. Values arrive as text (from the command line, a pipeline file or the wire) and are
checked here, once: an unknown key or a bad value is a :class:`ConfigError` that says what
would be valid.

=========================  ==============  ====================================================
key                        default         meaning
=========================  ==============  ====================================================
cleanup.policy             delete          delete | compact | compact,delete
retention.ms               604800000       delete segments older than this (-1: keep forever)
retention.bytes            -1              delete oldest segments above this size per partition
segment.bytes              1073741824      roll the active segment at this size
segment.ms                 604800000       roll the active segment at this age
index.interval.bytes       4096            bytes between two offset-index entries
max.message.bytes          1048588         largest batch a producer may append
compression.type           producer        producer | none | gzip | snappy | lz4 | zstd
flush.policy               commit          commit | interval | never (see docs/log.md)
flush.ms                   1000            the interval of ``flush.policy=interval``
delete.retention.ms        86400000        how long a compacted topic keeps tombstones
message.timestamp.type     CreateTime      CreateTime | LogAppendTime
codec                      json            how pipelines decode values: json | text | bytes, or
                                           a codec a plugin adds (a lowercase name)
=========================  ==============  ====================================================
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..errors import ConfigError

__all__ = ["CONFIG_KEYS", "OWN_CONFIG_KEYS", "TopicConfig"]


_INT32_MAX = (1 << 31) - 1
_INT64_MAX = (1 << 63) - 1


def _integer(minimum: int, maximum: int = _INT64_MAX) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"must be an integer from {minimum} to {maximum}") from None
        if not minimum <= value <= maximum:
            raise ValueError(f"must be an integer from {minimum} to {maximum}")
        return value

    return parse


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"valid: {', '.join(choices)}")
        return text

    return parse


def _cleanup_policy(text: str) -> str:
    parts = sorted({p.strip() for p in text.split(",") if p.strip()})
    if not parts or any(p not in ("compact", "delete") for p in parts):
        raise ValueError("valid: delete, compact, compact,delete")
    return ",".join(parts)


_CODEC_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")


def _codec_name(text: str) -> str:
    """A codec's name; which codecs exist is the plugins' business, not the log's."""
    if not _CODEC_NAME.fullmatch(text):
        raise ValueError("valid: json, text, bytes, or a plugin codec's lowercase name")
    return text


@dataclass(frozen=True)
class _Key:
    default: str
    parse: Callable[[str], object]
    doc: str


CONFIG_KEYS: dict[str, _Key] = {
    "cleanup.policy": _Key("delete", _cleanup_policy, "delete | compact | compact,delete"),
    "retention.ms": _Key("604800000", _integer(-1), "keep records this long (-1: forever)"),
    "retention.bytes": _Key("-1", _integer(-1), "keep at most this many bytes per partition"),
    "segment.bytes": _Key("1073741824", _integer(1024, _INT32_MAX), "roll segments at this size"),
    "segment.ms": _Key("604800000", _integer(1), "roll segments at this age"),
    "index.interval.bytes": _Key(
        "4096", _integer(0, _INT32_MAX), "bytes between offset-index entries"
    ),
    "max.message.bytes": _Key(
        "1048588", _integer(64, _INT32_MAX), "largest batch a producer may append"
    ),
    "compression.type": _Key(
        "producer",
        _choice("producer", "none", "gzip", "snappy", "lz4", "zstd"),
        "producer | none | gzip | snappy | lz4 | zstd",
    ),
    "flush.policy": _Key(
        "commit", _choice("commit", "interval", "never"), "commit | interval | never"
    ),
    "flush.ms": _Key("1000", _integer(1), "fsync interval of flush.policy=interval"),
    "delete.retention.ms": _Key("86400000", _integer(0), "how long tombstones are kept"),
    "message.timestamp.type": _Key(
        "CreateTime", _choice("CreateTime", "LogAppendTime"), "CreateTime | LogAppendTime"
    ),
    "codec": _Key("json", _codec_name, "json | text | bytes | a plugin codec's name"),
}
"""Every topic config millstream knows, with its default and what is valid."""

OWN_CONFIG_KEYS = frozenset({"codec", "flush.policy"})
"""The topic configs that are millstream's own (the others are Kafka's names): a millstream
broker keeps them, Apache Kafka refuses names it does not know."""


@dataclass(frozen=True)
class TopicConfig:
    """A topic's configs: the overrides set on it, and typed accessors for every key."""

    overrides: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, values: Mapping[str, object] | None, *, base: TopicConfig | None = None):
        """Check ``values`` and return the config with them applied on top of ``base``.

        A value of None removes an override (the key reads as its default again).
        """
        merged = dict(base.overrides) if base else {}
        for key, raw in (values or {}).items():
            spec = CONFIG_KEYS.get(key)
            if spec is None:
                raise ConfigError(_unknown_key_message(key))
            if raw is None:
                merged.pop(key, None)
                continue
            text = str(raw).strip()
            if isinstance(raw, bool):
                text = str(raw).lower()
            try:
                value = spec.parse(text)
            except ValueError as exc:
                raise ConfigError(f"topic config {key}={text!r} is not valid: {exc}") from None
            merged[key] = str(value)  # normalised: "compact,,delete" is kept as "compact,delete"
        return cls(merged)

    def get(self, key: str) -> str:
        """The value of ``key`` as text, its default when not overridden."""
        try:
            return self.overrides.get(key, CONFIG_KEYS[key].default)
        except KeyError:
            raise ConfigError(_unknown_key_message(key)) from None

    def all(self) -> dict[str, str]:
        """Every config key with its value, sorted by key."""
        return {key: self.get(key) for key in sorted(CONFIG_KEYS)}

    def _int(self, key: str) -> int:
        return int(self.get(key))

    @property
    def compact(self) -> bool:
        return "compact" in self.get("cleanup.policy")

    @property
    def delete(self) -> bool:
        return "delete" in self.get("cleanup.policy")

    @property
    def retention_ms(self) -> int:
        return self._int("retention.ms")

    @property
    def retention_bytes(self) -> int:
        return self._int("retention.bytes")

    @property
    def segment_bytes(self) -> int:
        return self._int("segment.bytes")

    @property
    def segment_ms(self) -> int:
        return self._int("segment.ms")

    @property
    def index_interval_bytes(self) -> int:
        return self._int("index.interval.bytes")

    @property
    def max_message_bytes(self) -> int:
        return self._int("max.message.bytes")

    @property
    def compression_type(self) -> str:
        return self.get("compression.type")

    @property
    def flush_policy(self) -> str:
        return self.get("flush.policy")

    @property
    def flush_ms(self) -> int:
        return self._int("flush.ms")

    @property
    def delete_retention_ms(self) -> int:
        return self._int("delete.retention.ms")

    @property
    def log_append_time(self) -> bool:
        return self.get("message.timestamp.type") == "LogAppendTime"

    @property
    def codec(self) -> str:
        return self.get("codec")


def _unknown_key_message(key: str) -> str:
    close = difflib.get_close_matches(key, CONFIG_KEYS, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown topic config {key!r}; {hint}known: {', '.join(sorted(CONFIG_KEYS))}"
