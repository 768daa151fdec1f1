"""``millstream broker``: serve a data directory over the Kafka protocol."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from ..broker.config import BrokerConfig, parse_host_port
from ..client import resolve_store_url
from ..protocol import DEFAULT_MAX_FRAME_SIZE
from ._args import HelpFormatter, UsageError, non_negative_int, positive_int

__all__ = ["register"]


def _host_port(text: str) -> tuple[str, int]:
    try:
        return parse_host_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _http_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` as for ``--listen``; a bare ``PORT`` or ``:PORT`` listens on 127.0.0.1."""
    if text.isdigit():
        text = f"127.0.0.1:{text}"
    host, port = _host_port(text)
    return host or "127.0.0.1", port


def _node_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= 2**31 - 1:
        raise argparse.ArgumentTypeError(f"node id {value} is out of range; valid: 0 to 2147483647")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


def register(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    broker = commands.add_parser(
        "broker",
        parents=parents,
        help="serve a data directory to Kafka clients over TCP",
        description="Serve the store in a data directory over the Kafka protocol, so that many "
        "processes and machines share it and Kafka clients (librdkafka, kafka-python, the Java "
        "client, kcat) work against it unchanged. Stops cleanly on SIGTERM or Ctrl-C. The broker "
        "has no authentication yet: keep it on a trusted network. See docs/broker.md.",
        epilog="examples:\n"
        "  millstream broker --data-dir ./data\n"
        "  millstream broker --data-dir ./data --listen 0.0.0.0:9092 --advertised host1:9092\n"
        "  millstream broker --data-dir ./data --http 127.0.0.1:8080",
        formatter_class=HelpFormatter,
    )
    broker.add_argument(
        "--listen",
        type=_host_port,
        default=("127.0.0.1", 9092),
        metavar="HOST:PORT",
        help="the address to listen on (default 127.0.0.1:9092)",
    )
    broker.add_argument(
        "--advertised",
        type=_host_port,
        metavar="HOST:PORT",
        help="the address clients are told to connect to (default: the listen address)",
    )
    broker.add_argument(
        "--http",
        type=_http_address,
        metavar="HOST:PORT",
        help="also serve the REST API (topics, records, groups, metrics, SQL) on this address; "
        "a bare PORT listens on 127.0.0.1 (default: no REST API; see docs/rest.md)",
    )
    broker.add_argument(
        "--node-id", type=_node_id, default=0, metavar="N", help="this broker's node id (default 0)"
    )
    broker.add_argument(
        "--auto-create-topics",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="create a topic a client asks metadata for when it does not exist (default: on)",
    )
    broker.add_argument(
        "--num-partitions",
        type=positive_int,
        default=1,
        metavar="N",
        help="partitions of an auto-created topic (default 1)",
    )
    broker.add_argument(
        "--group-min-session-timeout-ms",
        type=positive_int,
        default=6000,
        metavar="MS",
        help="the shortest session timeout a consumer-group member may ask for (default 6000)",
    )
    broker.add_argument(
        "--group-initial-rebalance-delay-ms",
        type=non_negative_int,
        default=3000,
        metavar="MS",
        help="how long an empty group's first rebalance waits for more members (default 3000)",
    )
    broker.add_argument(
        "--max-request-size",
        type=positive_int,
        default=DEFAULT_MAX_FRAME_SIZE,
        metavar="BYTES",
        help="the largest request a client may send; a larger one closes its connection "
        f"(default {DEFAULT_MAX_FRAME_SIZE}, Kafka's socket.request.max.bytes)",
    )
    broker.add_argument(
        "--idle-timeout",
        type=_seconds,
        default=600.0,
        metavar="SECONDS",
        help="close a connection that sends nothing, or reads nothing of a response, for this "
        "long (default 600, Kafka's connections.max.idle.ms)",
    )
    broker.add_argument(
        "--max-connections",
        type=positive_int,
        default=1000,
        metavar="N",
        help="client connections served at once; one more is closed as it is accepted "
        "(default 1000)",
    )
    broker.add_argument(
        "--max-in-flight",
        type=positive_int,
        default=64,
        metavar="N",
        help="requests of one connection read ahead of the response being written (default 64)",
    )
    broker.add_argument(
        "--retention-check-interval",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="how often retention and compaction run (default 60, Kafka's "
        "log.retention.check.interval.ms)",
    )
    broker.set_defaults(run=_run)


def _data_dir(args: argparse.Namespace) -> Path:
    """The directory to serve: ``--data-dir``, ``--store file:DIR``, the environment, or the
    default store, as for every other command; a network store cannot be served."""
    url = resolve_store_url(
        getattr(args, "store", None),
        data_dir=getattr(args, "data_dir", None),
        bootstrap_server=getattr(args, "bootstrap_server", None),
    )
    if not url.startswith("file:"):
        raise UsageError(
            f"the broker serves a data directory, not {url!r}; give --data-dir DIR "
            "(or --store file:DIR)"
        )
    return Path(url.removeprefix("file:"))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _run(args: argparse.Namespace) -> int:
    from ..broker.server import Broker

    listen_host, listen_port = args.listen
    advertised_host, advertised_port = args.advertised or (None, None)
    config = BrokerConfig(
        data_dir=_data_dir(args),
        listen_host=listen_host,
        listen_port=listen_port,
        advertised_host=advertised_host,
        advertised_port=advertised_port,
        node_id=args.node_id,
        auto_create_topics=args.auto_create_topics,
        num_partitions=args.num_partitions,
        group_min_session_timeout_ms=args.group_min_session_timeout_ms,
        group_initial_rebalance_delay_ms=args.group_initial_rebalance_delay_ms,
        max_request_size=args.max_request_size,
        idle_timeout_s=args.idle_timeout,
        max_connections=args.max_connections,
        max_in_flight=args.max_in_flight,
        maintenance_interval_s=args.retention_check_interval,
    )
    if args.http is not None:
        config.http_host, config.http_port = args.http
    if not listen_host:
        raise UsageError("--listen needs a host, e.g. 127.0.0.1:9092 or 0.0.0.0:9092")
    logging.basicConfig(
        level=logging.INFO, format="millstream broker: %(message)s", stream=sys.stderr
    )
    if not _is_loopback(listen_host):
        print(
            f"millstream broker: warning: listening on {listen_host}, not loopback; the broker "
            "has no authentication or encryption yet, so anyone who can reach this address can "
            "read and write every topic",
            file=sys.stderr,
        )
    if args.http is not None and not _is_loopback(config.http_host):
        print(
            f"millstream broker: warning: the REST API listens on {config.http_host}, not "
            "loopback; it has no authentication or encryption yet, so anyone who can reach this "
            "address can read, write and delete every topic",
            file=sys.stderr,
        )
    broker = Broker(config)
    await broker.start()
    rest = await _start_rest(broker, config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(
        f"millstream broker: node {config.node_id} serving {str(config.data_dir)!r} on "
        f"{listen_host}:{broker.listen_port} (advertised {broker.host}:{broker.port})",
        file=sys.stderr,
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if rest is not None:
            await rest.stop()
        await broker.stop()
    print("millstream broker: stopped", file=sys.stderr, flush=True)
    return 0


async def _start_rest(broker: Any, config: BrokerConfig) -> Any:
    """The REST API of a started broker when ``--http`` asks for it; when its address cannot be
    bound the broker is stopped and the error says which address."""
    if config.http_port is None:
        return None
    from ..broker.rest import RestServer

    rest = RestServer(broker, config.http_host, config.http_port)
    try:
        await rest.start()
    except BaseException as exc:
        await broker.stop()
        if not isinstance(exc, OSError):
            raise
        raise UsageError(
            f"cannot serve the REST API on {config.http_host}:{config.http_port}: "
            f"{exc.strerror or exc}; give --http another HOST:PORT"
        ) from None
    print(
        f"millstream broker: REST API on http://{config.http_host}:{rest.port}",
        file=sys.stderr,
        flush=True,
    )
    return rest
