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
        "not a url",
    ],
)
def test_a_url_without_a_password_is_kept(url: str) -> None:
    assert redact_url(url) == url
