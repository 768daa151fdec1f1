"""Kafka's error codes: numbers, names and retriability as Kafka's clients know them."""

from __future__ import annotations

from kafka import errors as kafka_errors

from millstream.core.protocol import ErrorCode


def test_codes_run_from_minus_one_without_gaps() -> None:
    codes = sorted(int(e) for e in ErrorCode)
    assert codes == list(range(-1, codes[-1] + 1))
    assert codes[-1] >= 120


def test_well_known_codes() -> None:
    assert ErrorCode.NONE == 0
    assert ErrorCode.UNKNOWN_TOPIC_OR_PARTITION == 3
    assert ErrorCode.NOT_LEADER_OR_FOLLOWER == 6
    assert ErrorCode.UNSUPPORTED_VERSION == 35
    assert ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER == 45
    assert ErrorCode.MEMBER_ID_REQUIRED == 79
    assert ErrorCode.FENCED_INSTANCE_ID == 82
    assert ErrorCode.for_code(35) is ErrorCode.UNSUPPORTED_VERSION
    assert ErrorCode.for_code(30000) is ErrorCode.UNKNOWN_SERVER_ERROR


def test_every_code_has_a_one_line_message() -> None:
    for code in ErrorCode:
        assert code.message and "\n" not in code.message and code.message.endswith("."), code.name


def test_retriable_flags_agree_with_kafka_python() -> None:
    """kafka-python marks retriable errors with its own classes; where it knows a code, agree.

    One known difference: Kafka's protocol documentation marks CORRUPT_MESSAGE retriable (a
    corrupted request may arrive intact next time); kafka-python does not. We follow Kafka.
    """
    assert ErrorCode.CORRUPT_MESSAGE.retriable
    disagree = []
    for code in ErrorCode:
        if code in (ErrorCode.NONE, ErrorCode.CORRUPT_MESSAGE):
            continue
        theirs = kafka_errors.for_code(int(code))
        if theirs is kafka_errors.UnknownError and code != ErrorCode.UNKNOWN_SERVER_ERROR:
            continue
        if theirs.retriable != code.retriable:
            disagree.append(code.name)
    assert not disagree
