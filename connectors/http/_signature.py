"""Checking who sent a webhook: a bearer token, or an HMAC-SHA256 signature of the body.

Two signature styles are understood:

- ``github``: the header holds ``sha256=<hex>``, the HMAC-SHA256 of the body
  (GitHub's ``X-Hub-Signature-256``; a bare hex digest is accepted too);
- ``stripe``: the header holds ``t=<unix time>,v1=<hex>[,v1=<hex>…]``, each ``v1`` the
  HMAC-SHA256 of ``<t>.<body>``, and ``t`` must lie within a tolerance of now (Stripe's
  ``Stripe-Signature``), which stops a captured request being replayed later.

Every comparison runs in constant time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Literal

__all__ = ["SignatureStyle", "bearer_ok", "signature_problem"]

SignatureStyle = Literal["github", "stripe"]


def bearer_ok(authorization: str | None, token: str) -> bool:
    """True when ``authorization`` is ``Bearer <token>``."""
    if not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def signature_problem(
    style: SignatureStyle,
    header: str | None,
    body: bytes,
    secret: str,
    *,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> str | None:
    """None when ``header`` signs ``body`` with ``secret``; else what is wrong (one line,
    safe to tell the sender: it never holds the expected signature)."""
    if not header:
        return "the signature header is missing"
    key = secret.encode()
    if style == "github":
        given = header.strip()
        if given.startswith("sha256="):
            given = given[len("sha256=") :]
        expected = hmac.new(key, body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(given.lower().encode(), expected.encode()):
            return None
        return "the signature does not match the body"
    stamp = ""
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            stamp = value
        elif name == "v1":
            candidates.append(value)
    if not stamp or not candidates:
        return "the signature header must hold t=<time> and v1=<signature>"
    try:
        signed_at = int(stamp)
    except ValueError:
        return f"the signature time {stamp[:20]!r} is not a number"
    if abs((time.time() if now is None else now) - signed_at) > tolerance_s:
        return f"the signature time is more than {tolerance_s:g}s away from now"
    signed = hmac.new(key, stamp.encode() + b"." + body, hashlib.sha256).hexdigest().encode()
    if any(hmac.compare_digest(c.lower().encode(), signed) for c in candidates):
        return None
    return "the signature does not match the body"
