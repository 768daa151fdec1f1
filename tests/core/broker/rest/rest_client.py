"""A small HTTP client for the REST tests: :class:`Rest` and :func:`assert_error`."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import requests

_names = itertools.count()


class Rest:
    """``requests`` against one broker's REST API, with the base URL filled in."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.base + path, timeout=30, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> requests.Response:
        return self.session.post(self.base + path, json=json, timeout=30, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.delete(self.base + path, timeout=30, **kwargs)

    def create_topic(self, partitions: int = 1, **configs: str) -> str:
        """A new topic of the test's own; its name."""
        name = f"rest-{next(_names)}-{uuid.uuid4().hex[:6]}"
        answer = self.post(
            "/topics",
            {
                "name": name,
                "partitions": partitions,
                "configs": {k.replace("_", "."): v for k, v in configs.items()},
            },
        )
        assert answer.status_code == 201, answer.text
        return name


def assert_error(answer: requests.Response, status: int, code: str, *words: str) -> dict[str, Any]:
    """``answer`` is the JSON error ``code`` with ``status`` and a one-line message holding
    ``words``; the body."""
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    body = answer.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == code, body
    assert "\n" not in body["message"]
    for word in words:
        assert word in body["message"], body["message"]
    return body
