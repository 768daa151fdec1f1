"""The mqtt source and sink log in with a user name and password, and speak TLS (a CA made in
the test, a broker certificate it signed, a client certificate), against a real Mosquitto."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest
from mosquitto_server import MosquittoServer, MosquittoTLS

from millstream.connectors.mqtt import MqttSink, MqttSinkConfig, MqttSource, MqttSourceConfig
from millstream.core import ConnectorContext, ConnectorError, Event

pytestmark = pytest.mark.usefixtures("mosquitto_binary")

OPENSSL = shutil.which("openssl")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run([OPENSSL or "openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
        cwd=folder,
    )  # fmt: skip
    return cert, key


def signed(folder: Path, name: str, ca: tuple[Path, Path], extension: str) -> tuple[Path, Path]:
    key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
    ext = folder / f"{name}.ext"
    ext.write_text(extension + "\n")
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}",
        cwd=folder,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext),
        cwd=folder,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """A CA, a broker certificate for 127.0.0.1 it signed, a client certificate, another CA."""
    if OPENSSL is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path / "pki"
    ca = make_ca(folder, "test-ca")
    server = signed(folder, "broker", ca, "subjectAltName=IP:127.0.0.1")
    client = signed(folder, "client", ca, "extendedKeyUsage=clientAuth")
    other, _ = make_ca(folder / "other", "other-ca")
    return {
        "ca": ca[0],
        "server_cert": server[0],
        "server_key": server[1],
        "client_cert": client[0],
        "client_key": client[1],
        "other_ca": other,
    }


async def round_trip(url: str, source_settings: dict, sink_settings: dict) -> list[Event]:
    """Open a source, publish three events through the sink, read them back."""
    source = MqttSource(
        MqttSourceConfig(url=url, topics=["sec/#"], **source_settings), ConnectorContext("p", "s")
    )
    sink = MqttSink(
        MqttSinkConfig(url=url, topic="sec/{value.n}", **sink_settings), ConnectorContext("p", "k")
    )
    await source.open(None)
    try:
        await sink.open()
        try:
            await sink.write([Event({"n": n}) for n in range(3)])
            await sink.flush()
        finally:
            await sink.close()
        events: list[Event] = []
        while len(events) < 3:
            batch = await asyncio.wait_for(source.read(), 10)
            events.extend(batch.events)
            await source.ack(batch.position)
        return events
    finally:
        await source.close()


async def test_a_user_name_and_password_log_in(tmp_path: Path) -> None:
    with MosquittoServer(tmp_path / "broker", users={"sensor": "s3cret"}) as broker:
        login = {"username": "sensor", "password": "s3cret"}
        events = await round_trip(broker.url, login, login)
    assert sorted(e.value["n"] for e in events) == [0, 1, 2]


@pytest.mark.parametrize("kind", ["source", "sink"])
@pytest.mark.parametrize("login", [{"username": "sensor", "password": "wrong"}, {}])
async def test_a_refused_login_is_an_error_naming_username_and_password(
    tmp_path: Path, kind: str, login: dict
) -> None:
    with MosquittoServer(tmp_path / "broker", users={"sensor": "s3cret"}) as broker:
        if kind == "source":
            part: MqttSource | MqttSink = MqttSource(
                MqttSourceConfig(url=broker.url, topics=["a"], **login), ConnectorContext("p", "s")
            )
            opening = part.open(None)
        else:
            part = MqttSink(
                MqttSinkConfig(url=broker.url, topic="a", **login), ConnectorContext("p", "k")
            )
            opening = part.open()
        with pytest.raises(ConnectorError) as error:
            await opening
        await part.close()
    message = str(error.value)
    assert f"mqtt {kind} " in message and "username/password" in message
    assert "refused the connection" in message
    assert "wrong" not in message  # the password is never shown


async def test_tls_with_the_ca_that_signed_the_broker(tmp_path: Path, pki: dict) -> None:
    tls = MosquittoTLS(pki["ca"], pki["server_cert"], pki["server_key"])
    with MosquittoServer(tmp_path / "broker", tls=tls) as broker:
        assert broker.url.startswith("mqtts://")
        settings = {"ca_file": pki["ca"]}
        events = await round_trip(broker.url, settings, settings)
    assert sorted(e.value["n"] for e in events) == [0, 1, 2]


async def test_tls_refuses_a_broker_signed_by_another_ca_unless_insecure(
    tmp_path: Path, pki: dict
) -> None:
    tls = MosquittoTLS(pki["ca"], pki["server_cert"], pki["server_key"])
    with MosquittoServer(tmp_path / "broker", tls=tls) as broker:
        source = MqttSource(
            MqttSourceConfig(url=broker.url, topics=["a"], ca_file=pki["other_ca"]),
            ConnectorContext("p", "s"),
        )
        with pytest.raises(ConnectorError, match=r"url: TLS with mqtts://.* failed: .*ca_file"):
            await source.open(None)
        await source.close()
        insecure = {"insecure": True}
        events = await round_trip(broker.url, insecure, insecure)
    assert len(events) == 3


async def test_tls_with_a_client_certificate(tmp_path: Path, pki: dict) -> None:
    tls = MosquittoTLS(pki["ca"], pki["server_cert"], pki["server_key"], require_certificate=True)
    with MosquittoServer(tmp_path / "broker", tls=tls) as broker:
        mine = {
            "ca_file": pki["ca"],
            "cert_file": pki["client_cert"],
            "key_file": pki["client_key"],
        }
        events = await round_trip(broker.url, mine, mine)
        without = MqttSink(
            MqttSinkConfig(url=broker.url, topic="a", ca_file=pki["ca"], connect_timeout="3s"),
            ConnectorContext("p", "k"),
        )
        with pytest.raises(ConnectorError, match="url"):
            await without.open()
        await without.close()
    assert len(events) == 3


def test_tls_files_need_an_mqtts_url() -> None:
    with pytest.raises(ValueError, match="ca_file is for TLS; use an mqtts:// url"):
        MqttSinkConfig(url="mqtt://h", topic="a", ca_file="ca.pem")
    with pytest.raises(ValueError, match="cert_file needs the key_file"):
        MqttSinkConfig(url="mqtts://h", topic="a", cert_file="c.pem")
