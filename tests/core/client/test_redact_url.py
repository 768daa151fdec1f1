"""redact_url: a store URL as it may be shown, its password masked."""

from __future__ import annotations

import pytest

from millstream.core.client import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("millstream://admin:s3cr3t-pass@broker:9092", "millstream://admin:****@broker:9092"),
        ("kafka://u:p@a:9092,b:9092", "kafka://u:****@a:9092,b:9092"),
        ("kafka://u:p@ss/w0rd@broker:9092", "kafka://u:****@broker:9092"),
        ("kafka://u:@broker:9092", "kafka://u:****@broker:9092"),
        (
            "kafka://u:p@b:9092?security.protocol=SASL_SSL&sasl.mechanism=PLAIN",
            "kafka://u:****@b:9092?security.protocol=SASL_SSL&sasl.mechanism=PLAIN",
        ),
        ("kafka://bob:b0b-p%40ss%2Fw%3Ard@b:9092/?x=1", "kafka://bob:****@b:9092/?x=1"),
        (
            "kafka://u:p@ss@b:9092,c:9093?ssl.ca.location=/home/a@b:1/ca.pem",
            "kafka://u:****@b:9092,c:9093?ssl.ca.location=/home/a@b:1/ca.pem",
        ),
        ("kafka://u:pa?ss@b:9092", "kafka://u:****@b:9092"),
        (
            "kafka://u:pa?ss@b:9092?security.protocol=SASL_SSL",
            "kafka://u:****@b:9092?security.protocol=SASL_SSL",
        ),
        (
            "kafka://b:9092?security.protocol=SSL&ssl.key.password=k3y&ssl.ca.location=/c.pem",
            "kafka://b:9092?security.protocol=SSL&ssl.key.password=****&ssl.ca.location=/c.pem",
        ),
    ],
)
def test_the_password_is_masked(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "file:./.millstream",
        "file:///var/lib/millstream",
        "kafka://broker:9092",
        "kafka://admin@broker:9092",
        "millstream://a:9092,b:9092",
        "kafka://admin@broker:9092?security.protocol=SSL",
        "kafka://b:9092?security.protocol=SSL&ssl.ca.location=/home/a@b/ca.pem",
        "not a url",
    ],
)
def test_a_url_without_a_password_is_kept(url: str) -> None:
    assert redact_url(url) == url
