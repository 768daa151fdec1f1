"""TLS and SASL in the network client: the store URL's security options, the SCRAM arithmetic
(RFC 7677's example), and real Apache Kafka listeners (SASL_PLAINTEXT, SSL, SASL_SSL) reached
with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 through the public client API and the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from kafka_server import USERS, KafkaCluster, fetch_kafka

from millstream.core.client import connect
from millstream.core.client.network import NetworkConnection, parse_bootstrap
from millstream.core.client.network.security import (
    PlainMechanism,
    ScramMechanism,
    SecuritySettings,
    parse_security,
)
from millstream.core.errors import AuthenticationError, InvalidStoreURLError, StoreError
from millstream.core.record import TopicPartition

MILLSTREAM = Path(sys.executable).parent / "millstream"


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def secure_url(
    cluster, listener: str, *, user: str | None = None, password: str | None = None, **options
) -> str:
    """A kafka:// URL for ``listener`` of ``cluster``, options named with _ for ."""
    userinfo = ""
    if user is not None:
        secret = USERS[user] if password is None else password
        userinfo = f"{quote(user, safe='')}:{quote(secret, safe='')}@"
    query = {"security.protocol": listener}
    if "SSL" in listener:
        query["ssl.ca.location"] = str(cluster.ca_file)
    query.update({k.replace("_", "."): v for k, v in options.items()})
    text = "&".join(f"{k}={quote(v, safe='/')}" for k, v in query.items())
    return f"kafka://{userinfo}{cluster.address(listener)}?{text}"


# --- the SCRAM arithmetic -----------------------------------------------------------------

RFC7677_NONCE = "rOprNGfwEbeRWgbNEkqO"
RFC7677_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC7677_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC7677_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_scram_sha_256_follows_the_example_of_rfc_7677() -> None:
    scram = ScramMechanism("SCRAM-SHA-256", "user", "pencil", nonce=RFC7677_NONCE)
    assert scram.start() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert scram.answer(RFC7677_SERVER_FIRST) == RFC7677_CLIENT_FINAL
    assert scram.answer(RFC7677_SERVER_FINAL) is None  # the server's signature checks out


def test_scram_refuses_a_server_that_does_not_know_the_password() -> None:
    scram = ScramMechanism("SCRAM-SHA-256", "user", "pencil", nonce=RFC7677_NONCE)
    scram.start()
    scram.answer(RFC7677_SERVER_FIRST)
    forged = b"v=" + b"A" * 43 + b"="
    with pytest.raises(AuthenticationError, match="signature is wrong"):
        scram.answer(forged)


def test_scram_refuses_a_nonce_that_does_not_extend_the_clients() -> None:
    scram = ScramMechanism("SCRAM-SHA-512", "user", "pencil", nonce="abc")
    scram.start()
    with pytest.raises(AuthenticationError, match="nonce"):
        scram.answer(b"r=xyz123,s=QSXCR+Q6sek8bf92,i=4096")


def test_scram_escapes_comma_and_equals_in_user_names_and_uses_fresh_nonces() -> None:
    first = ScramMechanism("SCRAM-SHA-256", "a,b=c", "pw").start()
    assert first.startswith(b"n,,n=a=2Cb=3Dc,r=")
    assert first != ScramMechanism("SCRAM-SHA-256", "a,b=c", "pw").start()


def test_plain_sends_user_and_password_in_one_message() -> None:
    plain = PlainMechanism("alice", "s3cr3t")
    assert plain.start() == b"\0alice\0s3cr3t"
    assert plain.answer(b"") is None


# --- the store URL ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("kafka://b:9092", SecuritySettings()),
        (
            "kafka://alice:pw@b:9092",
            SecuritySettings("SASL_SSL", "PLAIN", "alice", "pw"),
        ),
        (
            "kafka://bob:b0b-p%40ss%2Fw%3Ard@b:9092?security.protocol=sasl_plaintext"
            "&sasl.mechanism=SCRAM-SHA-512",
            SecuritySettings("SASL_PLAINTEXT", "SCRAM-SHA-512", "bob", "b0b-p@ss/w:rd"),
        ),
        (
            "millstream://b:1,c:2/?security.protocol=SSL&ssl.ca.location=/etc/ca%20dir/ca.pem"
            "&ssl.endpoint.identification.algorithm=none",
            SecuritySettings("SSL", ca_location="/etc/ca dir/ca.pem", verify_hostname=False),
        ),
        (
            "kafka://u:p@b:9092?ssl.certificate.location=/c.pem&ssl.key.location=/k.pem"
            "&ssl.key.password=x%26y",
            SecuritySettings(
                "SASL_SSL",
                "PLAIN",
                "u",
                "p",
                certificate_location="/c.pem",
                key_location="/k.pem",
                key_password="x&y",
            ),
        ),
    ],
)
def test_security_options_are_read_from_the_url(url: str, expected: SecuritySettings) -> None:
    assert parse_security(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "kafka://b:9092?sasl.mechansim=PLAIN",
            "option 'sasl.mechansim' is unknown; valid: sasl.mechanism, security.protocol,",
        ),
        (
            "kafka://u:p@b:9092?sasl.mechanism=GSSAPI",
            "sasl.mechanism='GSSAPI' is not valid; valid: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
        ),
        (
            "kafka://b:9092?security.protocol=TLS",
            "security.protocol='TLS' is not valid; valid: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
        ),
        ("kafka://b:9092?security.protocol=SASL_SSL", "needs USER:PASSWORD@ before the hosts"),
        ("kafka://u:p@b:9092?security.protocol=SSL", "security.protocol=SSL sends no credentials"),
        ("kafka://b:9092?sasl.mechanism=PLAIN", "sasl.mechanism needs security.protocol SASL"),
        ("kafka://b:9092?ssl.ca.location=/ca.pem", "ssl.ca.location needs security.protocol SSL"),
        (
            "kafka://b:9092?security.protocol=SSL&ssl.endpoint.identification.algorithm=x",
            "ssl.endpoint.identification.algorithm='x' is not valid; valid: https, none",
        ),
        ("kafka://b:9092?security.protocol=SSL&security.protocol=SSL", "given twice"),
        ("kafka://alice@b:9092", "must be USER:PASSWORD@"),
        ("kafka://alice:%ff@b:9092", "%-escape that is not UTF-8"),
        (
            "kafka://u:p@b:9092?ssl.key.location=/k.pem",
            "ssl.key.location needs ssl.certificate.location",
        ),
    ],
)
def test_a_bad_option_is_a_one_line_error_naming_it(url: str, message: str) -> None:
    with pytest.raises(InvalidStoreURLError) as caught:
        parse_security(url)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_certificate_file_is_named_with_its_option(tmp_path: Path) -> None:
    settings = parse_security(f"kafka://b:1?security.protocol=SSL&ssl.ca.location={tmp_path}/no")
    with pytest.raises(InvalidStoreURLError, match=r"ssl.ca.location: no such file '.*/no'"):
        settings.ssl_context  # noqa: B018


def test_the_bootstrap_addresses_ignore_credentials_and_options() -> None:
    url = "kafka://u:p@ss@a:9092,b:9093?ssl.ca.location=/x@y:1/ca.pem&security.protocol=SASL_SSL"
    assert parse_bootstrap(url) == [("a", 9092), ("b", 9093)]
    assert parse_bootstrap("kafka://a:1/?security.protocol=SSL") == [("a", 1)]


def test_a_bad_host_list_is_reported_without_the_password() -> None:
    with pytest.raises(InvalidStoreURLError) as caught:
        parse_bootstrap("kafka://alice:hunter2@broker?security.protocol=SASL_SSL")
    assert "'broker' is not HOST:PORT" in str(caught.value)
    assert "hunter2" not in str(caught.value)


# --- real Kafka -------------------------------------------------------------------------------

SASL_CASES = [
    (listener, mechanism, user)
    for listener, user in (("SASL_PLAINTEXT", "alice"), ("SASL_SSL", "bob"))
    for mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
]


async def _round_trip(url: str) -> None:
    """Create a topic, produce, consume it in a group that commits, and read the commit."""
    topic, group = fresh("secure"), fresh("g")
    conn = await connect(url)
    try:
        await conn.admin().create_topic(topic, partitions=2)
        async with conn.producer() as producer:
            for i in range(10):
                await producer.send(topic, b"v%d" % i, key=b"k%d" % i)
        consumer = conn.consumer(topic, group=group, auto_offset_reset="earliest")
        got: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(got) < 10 and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                got.extend(r.value for r in records)
        await consumer.commit()
        committed = [await consumer.committed(TopicPartition(topic, p)) for p in (0, 1)]
        await consumer.close()
        assert sorted(got) == sorted(b"v%d" % i for i in range(10))
        assert sum(c or 0 for c in committed) == 10
        assert topic in await conn.admin().list_topics()
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("listener", "mechanism", "user"), SASL_CASES, ids=[f"{c[0]}-{c[1]}" for c in SASL_CASES]
)
async def test_produce_consume_and_commit_over_sasl(
    kafka_secure, listener: str, mechanism: str, user: str
) -> None:
    await _round_trip(secure_url(kafka_secure, listener, user=user, sasl_mechanism=mechanism))


async def test_produce_consume_and_commit_over_tls_alone(kafka_secure) -> None:
    await _round_trip(secure_url(kafka_secure, "SSL"))


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
@pytest.mark.parametrize("listener", ["SASL_PLAINTEXT", "SASL_SSL"])
async def test_a_wrong_password_fails_at_once_naming_the_user(
    kafka_secure, listener: str, mechanism: str
) -> None:
    url = secure_url(
        kafka_secure, listener, user="alice", password="not-her-p@ss", sasl_mechanism=mechanism
    )
    began = time.monotonic()
    with pytest.raises(AuthenticationError) as caught:
        await connect(url)
    assert time.monotonic() - began < 5  # not retried until the connect timeout
    message = str(caught.value)
    assert message.startswith(
        f"SASL authentication as 'alice' failed at broker {kafka_secure.address(listener)}: "
    )
    assert "not-her-p@ss" not in message and "\n" not in message


async def test_an_unknown_mechanism_is_refused_before_connecting(kafka_secure) -> None:
    url = secure_url(kafka_secure, "SASL_SSL", user="alice", sasl_mechanism="GSSAPI")
    with pytest.raises(InvalidStoreURLError, match="valid: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"):
        await connect(url)


async def test_sasl_on_a_plain_listener_is_a_clear_error(kafka_secure) -> None:
    url = f"kafka://alice:x@{kafka_secure.bootstrap}?security.protocol=SASL_PLAINTEXT"
    with pytest.raises(AuthenticationError, match="is 127.0.0.1:[0-9]+ a SASL listener"):
        await connect(url)


async def test_the_systems_trust_store_does_not_trust_a_self_signed_broker(kafka_secure) -> None:
    url = f"kafka://{kafka_secure.address('SSL')}?security.protocol=SSL"
    began = time.monotonic()
    with pytest.raises(AuthenticationError) as caught:
        await connect(url)
    assert time.monotonic() - began < 5
    assert str(caught.value) == (
        f"TLS: the certificate of broker {kafka_secure.address('SSL')} cannot be verified: "
        "self-signed certificate; set ssl.ca.location to the PEM file of the CA that signed it"
    )


async def test_a_host_name_the_certificate_lacks_is_refused_unless_not_checked(
    kafka_secure,
) -> None:
    port = kafka_secure.address("SSL").rpartition(":")[2]
    # 127.1 reaches 127.0.0.1, but the certificate names only localhost and 127.0.0.1
    url = f"kafka://127.1:{port}?security.protocol=SSL&ssl.ca.location={kafka_secure.ca_file}"
    with pytest.raises(AuthenticationError, match="Hostname mismatch, certificate is not valid"):
        await connect(url)
    conn = await connect(url + "&ssl.endpoint.identification.algorithm=none")
    try:
        assert isinstance(await conn.admin().list_topics(), list)
    finally:
        await conn.close()


async def test_a_certificate_from_another_ca_is_refused(kafka_secure, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-keyout", str(tmp_path / "k.pem"), "-out", str(other),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    url = secure_url(kafka_secure, "SASL_SSL", user="alice", ssl_ca_location=str(other))
    with pytest.raises(AuthenticationError, match="cannot be verified: self-signed certificate"):
        await connect(url)


async def test_tls_on_a_plain_listener_fails_quickly_and_says_so(kafka_secure) -> None:
    url = f"kafka://{kafka_secure.bootstrap}?security.protocol=SSL"
    began = time.monotonic()
    with pytest.raises(StoreError, match="TLS handshake with broker 127.0.0.1:[0-9]+ failed"):
        await connect(url)
    assert time.monotonic() - began < 5


def test_the_command_line_lists_topics_over_sasl_ssl(kafka_secure) -> None:
    url = secure_url(kafka_secure, "SASL_SSL", user="bob", sasl_mechanism="SCRAM-SHA-512")
    topic = fresh("cli")
    created = subprocess.run(
        [str(MILLSTREAM), "topics", "create", topic, "--partitions", "3", "--store", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    listed = subprocess.run(
        [str(MILLSTREAM), "topics", "list", "--format", "json", "--store", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert topic in listed.stdout and json.loads(listed.stdout)
    refused = subprocess.run(
        [str(MILLSTREAM), "topics", "list", "--store", url.replace("bob:", "bob:x", 1)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "SASL authentication as 'bob' failed" in refused.stderr
    assert "Traceback" not in refused.stderr and "b0b" not in refused.stderr


# --- a stricter Kafka: client certificates, sessions with a lifetime (KIP-368) ---------------


def _self_signed(folder: Path, name: str, *, key_password: str | None = None) -> tuple[Path, Path]:
    """A self-signed certificate for CN ``name`` and its key (encrypted with ``key_password``)."""
    cert, key = folder / f"{name}-cert.pem", folder / f"{name}-key.pem"
    secret = ["-passout", f"pass:{key_password}"] if key_password else ["-nodes"]
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", *secret, "-days", "1",
            "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@dataclass
class StrictKafka:
    cluster: KafkaCluster
    client_cert: Path
    client_key: Path
    key_password: str


@pytest.fixture(scope="module")
def kafka_strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrictKafka]:
    """A Kafka node whose SSL listener requires a client certificate (the one this fixture
    makes) and whose SASL sessions last 2 s (``connections.max.reauth.ms``: a connection still
    used after that is closed by the broker unless authenticated again)."""
    try:
        libs = fetch_kafka()
    except RuntimeError as exc:
        pytest.skip(f"Apache Kafka is not available: {exc}")
    folder = tmp_path_factory.mktemp("kafka-strict")
    cert, key = _self_signed(folder, "client", key_password="k3y-pw")
    cluster = KafkaCluster(
        folder / "kafka",
        libs=libs,
        security=True,
        configs={
            "connections.max.reauth.ms": "2000",
            "listener.name.ssl.ssl.client.auth": "required",
            "listener.name.ssl.ssl.truststore.type": "PEM",
            "listener.name.ssl.ssl.truststore.location": str(cert),
        },
    ).start()
    try:
        yield StrictKafka(cluster, cert, key, "k3y-pw")
    finally:
        cluster.stop()


async def test_a_client_certificate_is_presented_when_the_broker_requires_one(
    kafka_strict: StrictKafka, tmp_path: Path
) -> None:
    strict = kafka_strict
    plain = secure_url(strict.cluster, "SSL")
    began = time.monotonic()
    with pytest.raises(AuthenticationError) as caught:
        await connect(plain)
    assert time.monotonic() - began < 5
    assert str(caught.value).startswith(
        f"TLS: broker {strict.cluster.address('SSL')} refused the client's certificate ("
    )
    assert str(caught.value).endswith(
        "it may require one: set ssl.certificate.location and ssl.key.location"
    )
    untrusted, its_key = _self_signed(tmp_path, "stranger")
    with pytest.raises(AuthenticationError, match="does it trust the one in ssl.certificate"):
        await connect(
            secure_url(
                strict.cluster,
                "SSL",
                ssl_certificate_location=str(untrusted),
                ssl_key_location=str(its_key),
            )
        )
    url = secure_url(
        strict.cluster,
        "SSL",
        ssl_certificate_location=str(strict.client_cert),
        ssl_key_location=str(strict.client_key),
        ssl_key_password=strict.key_password,
    )
    await _round_trip(url)


def test_client_certificate_files_that_do_not_load_are_named(
    kafka_strict: StrictKafka, tmp_path: Path
) -> None:
    strict = kafka_strict
    _, other_key = _self_signed(tmp_path, "other")
    base = f"kafka://b:1?security.protocol=SSL&ssl.certificate.location={strict.client_cert}"
    cases = {
        f"&ssl.key.location={strict.client_key}&ssl.key.password=wrong": "wrong ssl.key.password",
        f"&ssl.key.location={strict.client_key}": "wrong ssl.key.password",  # none given
        f"&ssl.key.location={other_key}": "the key is not the certificate's",
        "": "no key (ssl.key.location)",
    }
    for query, why in cases.items():
        with pytest.raises(InvalidStoreURLError) as caught:
            parse_security(base + query).ssl_context  # noqa: B018
        message = str(caught.value)
        assert message.startswith(
            "store URL options ssl.certificate.location/ssl.key.location: cannot load the "
            f"client certificate '{strict.client_cert}'"
        )
        assert why in message and strict.key_password not in message


async def test_connections_are_replaced_before_their_sasl_session_ends(
    kafka_strict: StrictKafka,
) -> None:
    url = secure_url(kafka_strict.cluster, "SASL_SSL", user="alice", sasl_mechanism="SCRAM-SHA-256")
    conn = await connect(url)
    assert isinstance(conn, NetworkConnection)
    seen: dict[int, object] = {}
    topic = fresh("reauth")
    try:
        await conn.admin().create_topic(topic)
        async with conn.producer() as producer:
            began = time.monotonic()
            sent = 0
            while time.monotonic() - began < 5:  # two and a half session lifetimes
                await asyncio.wait_for(producer.send(topic, b"v%d" % sent), 1.5)
                sent += 1
                for connection in conn.cluster._connections.values():
                    seen[id(connection)] = connection
                await asyncio.sleep(0.1)
        assert len(await conn.admin().list_topics()) >= 1
    finally:
        await conn.close()
    lost = [str(c._lost) for c in seen.values()]  # type: ignore[attr-defined]
    assert len(seen) >= 4  # the producer's and the shared connection, each replaced
    assert not [reason for reason in lost if "closed the connection" in reason]


# --- the millstream broker speaks neither ----------------------------------------------------


async def test_a_millstream_broker_refuses_sasl_clearly(broker_session) -> None:
    url = f"millstream://alice:pw@{broker_session.bootstrap}?security.protocol=SASL_PLAINTEXT"
    began = time.monotonic()
    with pytest.raises(AuthenticationError, match="does not offer SASL authentication"):
        await connect(url)
    assert time.monotonic() - began < 5


async def test_tls_to_a_millstream_broker_fails_quickly_and_says_so(broker_session) -> None:
    url = f"millstream://{broker_session.bootstrap}?security.protocol=SSL"
    began = time.monotonic()
    with pytest.raises(StoreError, match="TLS handshake with broker .* failed"):
        await connect(url)
    assert time.monotonic() - began < 5


@pytest.mark.parametrize("listener", ["SASL_PLAINTEXT", "SSL", "SASL_SSL"])
async def test_a_plain_client_at_a_secure_listener_is_pointed_to_security_protocol(
    kafka_secure, listener: str
) -> None:
    began = time.monotonic()
    with pytest.raises(StoreError) as caught:
        await connect(f"kafka://{kafka_secure.address(listener)}")
    assert time.monotonic() - began < 5
    message = str(caught.value)
    assert message.startswith(f"cannot reach kafka://{kafka_secure.address(listener)}: ")
    assert message.endswith("(does the listener need SASL or TLS? see security.protocol)")
    assert "\n" not in message
