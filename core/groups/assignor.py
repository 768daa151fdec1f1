"""How a group's partitions are split among its members: round robin, as Kafka's
``RoundRobinAssignor`` does.

Every partition of every topic any member subscribes to is listed in (topic, partition) order and
dealt out like cards to the members in turn, skipping a member that does not subscribe to the
partition's topic. Counts differ by at most one between members with the same subscription,
across all topics together (a range assignor would balance each topic on its own and give the
first members more when topics are small).
"""

from __future__ import annotations

from collections.abc import Mapping, Set

from ..record import TopicPartition

__all__ = ["round_robin"]


def round_robin(
    subscriptions: Mapping[str, Set[str]], partition_counts: Mapping[str, int]
) -> dict[str, list[TopicPartition]]:
    """Assign partitions to members.

    ``subscriptions`` maps each member id to its topics, in the order members are dealt to;
    ``partition_counts`` gives each topic's partition count (a topic missing or at 0 has none
    to assign). Returns every member's partitions, sorted.
    """
    members = list(subscriptions)
    out: dict[str, list[TopicPartition]] = {member: [] for member in members}
    if not members:
        return out
    topics = sorted(set().union(*subscriptions.values()))
    turn = 0
    for topic in topics:
        takers = {m for m in members if topic in subscriptions[m]}
        for partition in range(partition_counts.get(topic, 0)):
            # the next member in the circle that subscribes to this topic
            while members[turn % len(members)] not in takers:
                turn += 1
            out[members[turn % len(members)]].append(TopicPartition(topic, partition))
            turn += 1
    return out
