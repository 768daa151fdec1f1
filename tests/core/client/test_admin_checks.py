"""The admin argument checks every transport shares: the embedded store and a broker refuse the
same wrong arguments with the same words."""

from __future__ import annotations

import uuid

import pytest

from millstream.core.client import connect
from millstream.core.errors import ConfigError, InvalidOffsetError
from millstream.core.record import TopicPartition


async def refusals(url: str) -> list[str]:
    """What an admin of ``url`` says to each wrong argument, in order."""
    topic = f"checks-{uuid.uuid4().hex[:8]}"
    said = []
    async with await connect(url) as conn:
        admin = conn.admin()
        for factor in (0, 1.5, True):
            with pytest.raises(ConfigError) as refused:
                await admin.create_topic(topic, replication_factor=factor)  # type: ignore[arg-type]
            said.append(str(refused.value))
        await admin.create_topic(topic)
        async with conn.producer() as producer:
            await producer.send(topic, b"one")
        tp = TopicPartition(topic, 0)
        for spec in ("middle", -3, 2.5):
            with pytest.raises(InvalidOffsetError) as refused:
                await admin.list_offsets(tp, spec)  # type: ignore[arg-type]
            said.append(str(refused.value).replace(topic, "T"))
        assert await admin.list_offsets(tp, -2) == await admin.list_offsets(tp, "earliest") == 0
        assert await admin.list_offsets(tp, -1) == await admin.list_offsets(tp, "latest") == 1
    return said


async def test_both_transports_refuse_the_same_arguments_alike(tmp_path, remote) -> None:
    embedded = await refusals(f"file:{tmp_path / 'store'}")
    network = await refusals(remote.url)
    assert embedded == network
    assert embedded[0] == "replication factor 0 is not valid; it is >= 1"
    assert "valid: 'earliest', 'latest' or a timestamp" in embedded[3]
