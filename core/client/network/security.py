"""TLS and SASL for the network client: the security settings of a store URL, and the SASL
mechanisms PLAIN (RFC 4616), SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677).

A store URL carries its security the way Kafka clients name it::

    kafka://[USER:PASSWORD@]HOST:PORT[,HOST:PORT][?option=value&option=value]

with the options of :data:`OPTIONS` (``security.protocol``, ``sasl.mechanism``,
``ssl.ca.location``…). :func:`parse_security` reads them into :class:`SecuritySettings`;
:func:`split_store_url` is the one place that tells the user information, the host list and
the query apart (the client's bootstrap parser and ``redact_url`` use it too).

The mechanisms are plain objects with no I/O: :meth:`SaslMechanism.start` gives the client's
first message, :meth:`SaslMechanism.answer` the reply to each server message (None once the
exchange is complete); :mod:`.wire` carries the bytes in SaslAuthenticate requests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import ssl
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from typing import Final
from urllib.parse import unquote

from ...errors import AuthenticationError, InvalidStoreURLError

__all__ = [
    "OPTIONS",
    "SASL_MECHANISMS",
    "SECURITY_PROTOCOLS",
    "PlainMechanism",
    "SaslMechanism",
    "ScramMechanism",
    "SecuritySettings",
    "StoreURLParts",
    "parse_security",
    "sasl_mechanism",
    "scram_client_proof",
    "scram_salted_password",
    "scram_server_signature",
    "split_store_url",
]

SECURITY_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
"""The values of ``security.protocol``, as Kafka names them."""

SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
"""The values of ``sasl.mechanism`` this client speaks."""

OPTIONS: Final = (
    "sasl.mechanism",
    "security.protocol",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.endpoint.identification.algorithm",
    "ssl.key.location",
    "ssl.key.password",
)
"""The query options a ``millstream://`` or ``kafka://`` URL may carry."""

_ENDPOINT_CHECKS: Final = ("https", "none")

# One HOST:PORT entry: no white space, '@', '?', '#', '/' or ',' in the host ([::1] allowed).
_HOST_PORT = r"\s*[^\s@?#/,]+:\d+\s*"
_HOSTS_THEN_REST = re.compile(rf"{_HOST_PORT}(?:,{_HOST_PORT})*(?=[/?#]|\Z)")
_HOSTS_THEN_QUERY = re.compile(rf"{_HOST_PORT}(?:,{_HOST_PORT})*(?=\?|\Z)")


@dataclass(frozen=True, slots=True)
class StoreURLParts:
    """A network store URL cut in its parts (nothing decoded or checked yet)."""

    scheme: str
    userinfo: str | None
    hosts: str
    query: str


def split_store_url(url: str) -> StoreURLParts | None:
    """``scheme://[USERINFO@]HOSTS[/][?QUERY]`` cut in its parts; None without ``://``.

    As in any URL, the query begins at the first ``?`` and the user information ends at an
    ``@`` before it: the last one followed by a list of ``HOST:PORT``, so a password holding
    ``@`` or ``/`` unencoded still works. Only when no ``@`` comes before the first ``?`` is a
    later one taken, if a host list and then ``?`` or the end follow it (a password holding
    an unencoded ``?``), so that such a password is still masked when the URL is shown.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        return None
    head = rest.partition("?")[0]
    before_query = [i for i, c in enumerate(head) if c == "@"]
    at = next((i for i in reversed(before_query) if _HOSTS_THEN_REST.match(rest, i + 1)), None)
    if at is None and before_query:
        at = before_query[-1]
    if at is None:
        anywhere = [i for i, c in enumerate(rest) if c == "@"]
        at = next((i for i in reversed(anywhere) if _HOSTS_THEN_QUERY.match(rest, i + 1)), None)
    userinfo, after = (None, rest) if at is None else (rest[:at], rest[at + 1 :])
    hosts, _, query = after.partition("?")
    return StoreURLParts(scheme, userinfo, hosts.split("/", 1)[0].split("#", 1)[0], query)


@dataclass(frozen=True)
class SecuritySettings:
    """How the client secures its connections to every broker of one store URL.

    ``protocol`` is one of :data:`SECURITY_PROTOCOLS`; ``mechanism``, ``username`` and
    ``password`` are set exactly when it is SASL_PLAINTEXT or SASL_SSL. The other fields
    matter for SSL and SASL_SSL: ``ca_location`` None means the system's trust store, and
    ``verify_hostname`` False (``ssl.endpoint.identification.algorithm=none``) still checks
    the certificate chain but not the name in it.
    """

    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_location: str | None = None
    certificate_location: str | None = None
    key_location: str | None = None
    key_password: str | None = field(default=None, repr=False)
    verify_hostname: bool = True

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of the connections (None without TLS), made on first use and then
        shared; InvalidStoreURLError when a certificate or key file cannot be read."""
        if not self.tls:
            return None
        files = {
            "ssl.ca.location": self.ca_location,
            "ssl.certificate.location": self.certificate_location,
            "ssl.key.location": self.key_location,
        }
        for option, path in files.items():
            if path is not None and not os.path.isfile(path):
                raise InvalidStoreURLError(f"store URL option {option}: no such file {path!r}")
        try:
            context = ssl.create_default_context(cafile=self.ca_location)
        except (ssl.SSLError, OSError) as exc:
            raise InvalidStoreURLError(
                f"store URL option ssl.ca.location: cannot load {self.ca_location!r} as PEM "
                f"certificates: {getattr(exc, 'reason', None) or exc}"
            ) from None
        context.check_hostname = self.verify_hostname
        if self.certificate_location is not None:
            key_password = self.key_password
            try:  # a password callable always: OpenSSL would ask on the terminal otherwise
                context.load_cert_chain(
                    self.certificate_location, self.key_location, lambda: key_password or ""
                )
            except (ssl.SSLError, OSError) as exc:
                if getattr(exc, "reason", None) == "KEY_VALUES_MISMATCH":
                    why = "the key is not the certificate's"
                else:
                    why = "not PEM, no key (ssl.key.location), or a wrong ssl.key.password"
                key = "" if self.key_location is None else f" and key {self.key_location!r}"
                raise InvalidStoreURLError(
                    "store URL options ssl.certificate.location/ssl.key.location: cannot load "
                    f"the client certificate {self.certificate_location!r}{key}: {why}"
                ) from None
        return context


def _decode(text: str) -> str:
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise InvalidStoreURLError(
            "store URL has a %-escape that is not UTF-8; percent-encode each byte of a "
            "character's UTF-8 form (urllib.parse.quote does)"
        ) from None


def parse_security(url: str) -> SecuritySettings:
    """The security settings of a ``millstream://`` or ``kafka://`` store URL.

    Defaults: without ``security.protocol``, a URL with ``USER:PASSWORD@`` uses SASL_SSL (so
    a password never crosses the network in clear unless asked for) and one without uses
    PLAINTEXT; ``sasl.mechanism`` is PLAIN. InvalidStoreURLError, naming the option and its
    valid values, for an unknown option, a bad value, or options that contradict each other.
    """
    parts = split_store_url(url)
    if parts is None:
        raise InvalidStoreURLError("a store URL is scheme://HOST:PORT[,HOST:PORT][?options]")
    options: dict[str, str] = {}
    for item in parts.query.split("&"):
        if not item:
            continue
        name, equals, value = item.partition("=")
        name = _decode(name)
        if name not in OPTIONS:
            raise InvalidStoreURLError(
                f"store URL option {name!r} is unknown; valid: {', '.join(OPTIONS)}"
            )
        if not equals:
            raise InvalidStoreURLError(f"store URL option {name} has no value; write {name}=…")
        if name in options:
            raise InvalidStoreURLError(f"store URL option {name} is given twice")
        options[name] = _decode(value)
    username = password = None
    if parts.userinfo is not None:
        user, colon, secret = parts.userinfo.partition(":")
        username = _decode(user)
        if not username or not colon:
            raise InvalidStoreURLError(
                "store URL user information must be USER:PASSWORD@ (percent-encode @ : / ? # "
                "in them, e.g. %40 for @)"
            )
        password = _decode(secret)
    protocol = _choice(
        options, "security.protocol", SECURITY_PROTOCOLS, "SASL_SSL" if username else "PLAINTEXT"
    )
    sasl = protocol.startswith("SASL_")
    if sasl and username is None:
        raise InvalidStoreURLError(
            f"security.protocol={protocol} needs USER:PASSWORD@ before the hosts, e.g. "
            f"{parts.scheme}://alice:secret@{parts.hosts.split(',')[0].strip()}"
        )
    if not sasl and username is not None:
        raise InvalidStoreURLError(
            f"store URL has USER:PASSWORD@ but security.protocol={protocol} sends no "
            "credentials; use SASL_SSL or SASL_PLAINTEXT"
        )
    mechanism = _choice(options, "sasl.mechanism", SASL_MECHANISMS, "PLAIN")
    if not sasl and "sasl.mechanism" in options:
        raise InvalidStoreURLError(
            f"store URL option sasl.mechanism needs security.protocol SASL_SSL or "
            f"SASL_PLAINTEXT, not {protocol}"
        )
    tls = protocol.endswith("SSL")
    given_ssl = sorted(n for n in options if n.startswith("ssl."))
    if given_ssl and not tls:
        raise InvalidStoreURLError(
            f"store URL option {given_ssl[0]} needs security.protocol SSL or SASL_SSL, "
            f"not {protocol}"
        )
    if "ssl.key.location" in options and "ssl.certificate.location" not in options:
        raise InvalidStoreURLError(
            "store URL option ssl.key.location needs ssl.certificate.location (the client "
            "certificate of that key)"
        )
    check = _choice(options, "ssl.endpoint.identification.algorithm", _ENDPOINT_CHECKS, "https")
    return SecuritySettings(
        protocol=protocol,
        mechanism=mechanism if sasl else None,
        username=username,
        password=password,
        ca_location=options.get("ssl.ca.location"),
        certificate_location=options.get("ssl.certificate.location"),
        key_location=options.get("ssl.key.location"),
        key_password=options.get("ssl.key.password"),
        verify_hostname=check == "https",
    )


def _choice(options: dict[str, str], name: str, valid: tuple[str, ...], default: str) -> str:
    value = options.get(name)
    if value is None:
        return default
    for candidate in valid:
        if candidate.lower() == value.lower():
            return candidate
    raise InvalidStoreURLError(
        f"store URL option {name}={value!r} is not valid; valid: {', '.join(valid)}"
    )


# --- SASL mechanisms ------------------------------------------------------------------------


class SaslMechanism(ABC):
    """The client side of one SASL exchange.

    :meth:`start` is called once and gives the first message; each server message is passed
    to :meth:`answer`, which returns the next client message, or None when the exchange is
    complete on the client's side. A server message that is malformed or proves the server
    does not know the password raises AuthenticationError.
    """

    name = ""

    @abstractmethod
    def start(self) -> bytes:
        """The client's first message."""

    @abstractmethod
    def answer(self, server_message: bytes) -> bytes | None:
        """The reply to ``server_message``; None once the client has nothing more to say."""


class PlainMechanism(SaslMechanism):
    """PLAIN (RFC 4616): one message, ``\\0USER\\0PASSWORD``; the server answers nothing."""

    name = "PLAIN"

    def __init__(self, username: str, password: str) -> None:
        self._message = b"\0" + username.encode() + b"\0" + password.encode()

    def start(self) -> bytes:
        return self._message

    def answer(self, server_message: bytes) -> bytes | None:
        return None


_SCRAM_HASHES: Final = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
_GS2_HEADER: Final = b"n,,"
"""No channel binding, no authorisation identity (RFC 5802 §7)."""


def scram_salted_password(hash_name: str, password: str, salt: bytes, iterations: int) -> bytes:
    """SaltedPassword = Hi(password, salt, i): PBKDF2 with HMAC-``hash_name``."""
    return hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, iterations)


def _hmac(hash_name: str, key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hash_name).digest()


def scram_client_proof(hash_name: str, salted_password: bytes, auth_message: bytes) -> bytes:
    """ClientProof = ClientKey XOR HMAC(H(ClientKey), AuthMessage)."""
    client_key = _hmac(hash_name, salted_password, b"Client Key")
    stored_key = hashlib.new(hash_name, client_key).digest()
    signature = _hmac(hash_name, stored_key, auth_message)
    return bytes(a ^ b for a, b in zip(client_key, signature, strict=True))


def scram_server_signature(hash_name: str, salted_password: bytes, auth_message: bytes) -> bytes:
    """ServerSignature = HMAC(HMAC(SaltedPassword, "Server Key"), AuthMessage)."""
    return _hmac(hash_name, _hmac(hash_name, salted_password, b"Server Key"), auth_message)


def _saslname(username: str) -> str:
    """RFC 5802's escaping of ``=`` and ``,`` in a user name."""
    return username.replace("=", "=3D").replace(",", "=2C")


def _attributes(message: bytes, what: str) -> dict[str, str]:
    try:
        text = message.decode()
    except UnicodeDecodeError:
        raise AuthenticationError(f"SCRAM: the server's {what} is not UTF-8") from None
    found: dict[str, str] = {}
    for item in text.split(","):
        name, equals, value = item.partition("=")
        if len(name) != 1 or not equals:
            raise AuthenticationError(f"SCRAM: the server's {what} is malformed: {text!r}")
        found.setdefault(name, value)
    return found


class ScramMechanism(SaslMechanism):
    """SCRAM-SHA-256 or SCRAM-SHA-512 (RFC 5802, RFC 7677), without channel binding.

    client-first, server-first (nonce, salt, iterations), client-final (the proof), and
    server-final, whose signature is checked: a server that cannot prove it knows the
    password is refused even when it says the client is authenticated.
    """

    def __init__(self, name: str, username: str, password: str, *, nonce: str | None = None):
        if name not in _SCRAM_HASHES:
            raise ValueError(f"unknown SCRAM mechanism {name!r}; valid: {', '.join(_SCRAM_HASHES)}")
        self.name = name
        self._hash = _SCRAM_HASHES[name]
        self._password = password
        self._nonce = nonce or secrets.token_urlsafe(24)
        self._first_bare = f"n={_saslname(username)},r={self._nonce}".encode()
        self._expected_signature: bytes | None = None
        self._step = 0

    def start(self) -> bytes:
        self._step = 1
        return _GS2_HEADER + self._first_bare

    def answer(self, server_message: bytes) -> bytes | None:
        if self._step == 1:
            self._step = 2
            return self._final(server_message)
        if self._step == 2:
            self._step = 3
            self._verify(server_message)
            return None
        raise AuthenticationError(f"{self.name}: the server sent a message after the last one")

    def _final(self, server_first: bytes) -> bytes:
        found = _attributes(server_first, "first message")
        if "e" in found:
            raise AuthenticationError(f"{self.name}: the server refused: {found['e']}")
        nonce, salt, iterations = found.get("r", ""), found.get("s"), found.get("i", "")
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise AuthenticationError(f"{self.name}: the server's nonce does not extend ours")
        if salt is None or not iterations.isdigit() or int(iterations) < 1:
            raise AuthenticationError(f"{self.name}: the server sent no valid salt or iterations")
        try:
            salt_bytes = base64.b64decode(salt, validate=True)
        except ValueError:
            raise AuthenticationError(f"{self.name}: the server's salt is not base64") from None
        salted = scram_salted_password(self._hash, self._password, salt_bytes, int(iterations))
        without_proof = b"c=" + base64.b64encode(_GS2_HEADER) + b",r=" + nonce.encode()
        auth_message = self._first_bare + b"," + server_first + b"," + without_proof
        proof = scram_client_proof(self._hash, salted, auth_message)
        self._expected_signature = scram_server_signature(self._hash, salted, auth_message)
        return without_proof + b",p=" + base64.b64encode(proof)

    def _verify(self, server_final: bytes) -> None:
        found = _attributes(server_final, "final message")
        if "e" in found:
            raise AuthenticationError(f"{self.name}: the server refused: {found['e']}")
        try:
            signature = base64.b64decode(found.get("v", ""), validate=True)
        except ValueError:
            signature = b""
        assert self._expected_signature is not None
        if not signature or not hmac.compare_digest(signature, self._expected_signature):
            raise AuthenticationError(
                f"{self.name}: the server's signature is wrong: it does not know the password; "
                "is this the broker you meant?"
            )


def sasl_mechanism(settings: SecuritySettings) -> SaslMechanism:
    """A fresh mechanism for one exchange (each connection authenticates anew)."""
    assert settings.mechanism and settings.username is not None and settings.password is not None
    if settings.mechanism == "PLAIN":
        return PlainMechanism(settings.username, settings.password)
    return ScramMechanism(settings.mechanism, settings.username, settings.password)
