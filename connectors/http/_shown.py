"""What the http connectors print: URLs and error texts without the secrets they may carry,
and the start of an answer.

A URL's user info (``user:password@``) and the values of query parameters named like a secret
(``token``, ``api_key``, ``secret``, ``password``, ``auth``, ``sig``, ``session``…) become
``***`` in every message, warning, dead letter's reason and header, and in the settings
``millstream validate`` prints. The request itself is sent with them.
"""

from __future__ import annotations

import re

__all__ = ["answer_start", "redact"]

_USERINFO = re.compile(r"(?<=://)[^/@\s?#]+@")
_PARAMETER = re.compile(r"([?&])([^=&#\s]+)=([^&#\s]*)")
_SECRET_NAME = re.compile(r"token|key|secret|pass|pwd|auth|sig|credential|session", re.I)


def redact(text: object) -> str:
    """``text`` (a URL, or a message holding URLs) with user info and secret-looking query
    values replaced by ``***``: ``https://u:pw@h/x?api_key=1&page=2`` →
    ``https://***@h/x?api_key=***&page=2``."""
    shown = _USERINFO.sub("***@", str(text))
    return _PARAMETER.sub(
        lambda m: f"{m[1]}{m[2]}=***" if _SECRET_NAME.search(m[2]) else m[0], shown
    )


def answer_start(content: bytes, limit: int = 200) -> str:
    """The first ``limit`` bytes of an answer's body as one line of text (``…`` when cut)."""
    text = content[:limit].decode("utf-8", "replace").replace("\n", " ").strip()
    return text + ("…" if len(content) > limit else "")
