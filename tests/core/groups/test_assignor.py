"""Round-robin assignment of a group's partitions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from millstream.core.groups import round_robin
from millstream.core.record import TopicPartition as TP


def test_partitions_of_all_topics_are_dealt_in_turn():
    dealt = round_robin({"a": {"t1", "t2"}, "b": {"t1", "t2"}}, {"t1": 3, "t2": 2})
    assert dealt == {
        "a": [TP("t1", 0), TP("t1", 2), TP("t2", 1)],
        "b": [TP("t1", 1), TP("t2", 0)],
    }


def test_members_only_get_topics_they_subscribe_to():
    dealt = round_robin({"a": {"t1"}, "b": {"t1", "t2"}}, {"t1": 2, "t2": 2})
    assert dealt == {"a": [TP("t1", 0)], "b": [TP("t1", 1), TP("t2", 0), TP("t2", 1)]}


def test_missing_topics_and_members_without_partitions():
    dealt = round_robin({"a": {"gone"}, "b": {"t"}, "c": {"t"}}, {"t": 1})
    assert dealt == {"a": [], "b": [TP("t", 0)], "c": []}
    assert round_robin({}, {"t": 4}) == {}


@given(
    st.integers(1, 8),
    st.dictionaries(st.sampled_from("abcde"), st.integers(0, 12), min_size=1),
)
def test_every_partition_has_exactly_one_owner_and_counts_are_even(members, counts):
    subs = {f"m{i}": set(counts) for i in range(members)}
    dealt = round_robin(subs, counts)
    owned = [tp for tps in dealt.values() for tp in tps]
    assert sorted(owned) == sorted(TP(t, p) for t, n in counts.items() for p in range(n))
    sizes = [len(tps) for tps in dealt.values()]
    assert max(sizes) - min(sizes) <= 1
