"""``millstream`` as a real process: pipes, exit statuses, signals, two processes on one store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

MILLSTREAM = str(Path(sys.executable).parent / "millstream")


def run(*args: str | bytes, stdin: bytes = b"", timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MILLSTREAM, *args], input=stdin, capture_output=True, timeout=timeout, env=_env()
    )


def start(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [MILLSTREAM, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
        **kwargs,
    )


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MILLSTREAM_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def store(tmp_path: Path) -> str:
    data = str(tmp_path / "store")
    assert run("topics", "create", "t", "--partitions", "2", "--data-dir", data).returncode == 0
    return data


def test_pipe_lines_in_and_out(store: str) -> None:
    lines = b"".join(b"k%d:v%d\n" % (i % 7, i) for i in range(5000))
    produced = run("produce", "t", "--key-separator", ":", "--data-dir", store, stdin=lines)
    assert produced.returncode == 0, produced.stderr
    assert b"produced 5000 records to t" in produced.stderr
    assert produced.stdout == b""

    consumed = run("consume", "t", "--from-beginning", "--timeout-ms", "500", "--data-dir", store)
    assert consumed.returncode == 0, consumed.stderr
    assert sorted(consumed.stdout.splitlines()) == sorted(b"v%d" % i for i in range(5000))


def test_text_output_is_the_value_bytes_unchanged(store: str) -> None:
    lines = b"caf\xc3\xa9\n\xff\xfe binary\ntab\there\n"
    assert run("produce", "t", "--partition", "1", "--data-dir", store, stdin=lines).returncode == 0
    consumed = run("consume", "t", "--from-beginning", "--timeout-ms", "300", "--data-dir", store)
    assert consumed.stdout == lines


def test_arguments_that_are_not_utf8_are_used_as_bytes(store: str) -> None:
    produced = run(
        "produce", "t", "--partition", "0", "--key-separator", b"\xff", "--header", b"h=\xfe",
        "--data-dir", store, stdin=b"k\xffv\n",
    )  # fmt: skip
    assert produced.returncode == 0, produced.stderr
    consumed = run(
        "consume", "t", "--from-beginning", "--timeout-ms", "300", "--data-dir", store,
        "--property", "print.key=true", "--property", "print.headers=true",
        "--property", b"key.separator=\xfd",
    )  # fmt: skip
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout == b"h:\xfe\xfdk\xfdv\n"


def test_a_full_stdout_is_a_clear_error(store: str) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    assert run("produce", "t", "--data-dir", store, stdin=b"one\n").returncode == 0
    for args in (("consume", "t", "--from-beginning", "--timeout-ms", "300"), ("topics", "list")):
        with open("/dev/full", "wb") as full:
            done = subprocess.run(
                [MILLSTREAM, *args, "--data-dir", store], stdout=full, stderr=subprocess.PIPE,
                timeout=60, env=_env(),
            )  # fmt: skip
        assert done.returncode == 1, args
        assert done.stderr == (
            b"millstream: error: cannot write to standard output: No space left on device\n"
        ), args


def test_produce_to_an_internal_topic_fails_before_reading_stdin(store: str) -> None:
    producer = start("produce", "__consumer_offsets", "--data-dir", store, stdin=subprocess.PIPE)
    try:
        assert producer.wait(timeout=30) == 1  # stdin is still open: it did not wait for it
        err = producer.stderr.read()
    finally:
        producer.kill()
        producer.stdin.close()
    assert err.startswith(b"millstream: error: topic '__consumer_offsets' is internal")
    assert err.count(b"\n") == 1 and b"line 1" not in err


def test_exit_statuses(store: str) -> None:
    assert run("topics", "describe", "missing", "--data-dir", store).returncode == 1
    assert run("topics", "create", "--data-dir", store).returncode == 2
    usage = run("consume", "t", "--max-messages", "zero", "--data-dir", store)
    assert usage.returncode == 2 and b"--max-messages" in usage.stderr


def test_closed_stdout_pipe_ends_quietly(store: str) -> None:
    lines = b"".join(b"reading number %d\n" % i for i in range(50_000))
    assert run("produce", "t", "--data-dir", store, stdin=lines).returncode == 0
    pipeline = subprocess.run(
        f"set -o pipefail; {MILLSTREAM} consume t --from-beginning --timeout-ms 3000 "
        f"--data-dir {store} | head -n 3",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        timeout=60,
        env=_env(),
    )
    assert pipeline.returncode == 0, pipeline.stderr
    assert len(pipeline.stdout.splitlines()) == 3
    assert pipeline.stderr == b""


def test_ctrl_c_ends_a_consumer_quietly_with_status_0(store: str) -> None:
    assert run("produce", "t", "--data-dir", store, stdin=b"first\n").returncode == 0
    consumer = start("consume", "t", "--from-beginning", "--data-dir", store)
    assert consumer.stdout.readline() == b"first\n"  # it is running, waiting for more
    consumer.send_signal(signal.SIGINT)
    _out, err = consumer.communicate(timeout=30)
    assert consumer.returncode == 0, err
    assert err == b""


def test_readers_work_while_another_process_owns_the_store(store: str) -> None:
    assert run("produce", "t", "--data-dir", store, stdin=b"one\ntwo\n").returncode == 0
    owner = start("consume", "t", "--group", "owner", "--from-beginning", "--data-dir", store)
    try:
        # once it has printed both records it owns the store (a group commits)
        printed = sorted([owner.stdout.readline(), owner.stdout.readline()])
        assert printed == [b"one\n", b"two\n"]
        locked = run("topics", "create", "u", "--data-dir", store)
        assert b"in use" in locked.stderr or b"locked" in locked.stderr, locked.stderr
        assert b"millstream broker" in locked.stderr
        assert locked.stderr.count(b"\n") == 1 and locked.stderr.startswith(b"millstream: error:")

        read = run("consume", "t", "--from-beginning", "--timeout-ms", "500", "--data-dir", store)
        assert read.returncode == 0, read.stderr
        assert sorted(read.stdout.splitlines()) == [b"one", b"two"]
        assert run("topics", "list", "--data-dir", store).returncode == 0
        assert run("topics", "describe", "t", "--data-dir", store).returncode == 0
        assert run("groups", "list", "--data-dir", store).returncode == 0
        planned = run(
            "groups", "reset-offsets", "owner", "--topic", "t", "--to-earliest", "--data-dir", store
        )  # a dry run only reads
        assert planned.returncode == 0, planned.stderr

        for writer in (
            ("topics", "create", "u"),
            ("topics", "delete", "t"),
            ("consume", "t", "--group", "other", "--timeout-ms", "100"),
            ("groups", "reset-offsets", "x", "--topic", "t", "--to-earliest", "--execute"),
        ):
            refused = run(*writer, "--data-dir", store)
            assert refused.returncode == 1, writer
            assert b"millstream broker" in refused.stderr, writer
    finally:
        owner.send_signal(signal.SIGINT)
        out, err = owner.communicate(timeout=30)
    assert owner.returncode == 0, err
    assert out == b""  # nothing more was written


def test_ctrl_c_during_produce_writes_the_complete_lines_read_so_far(store: str) -> None:
    producer = start("produce", "t", "--data-dir", store, stdin=subprocess.PIPE)
    producer.stdin.write(b"one\ntwo\nunfinished")
    producer.stdin.flush()
    _wait_until_visible(store, 2)  # it has read and sent the two complete lines
    producer.send_signal(signal.SIGINT)
    _out, err = producer.communicate(timeout=30)
    assert producer.returncode == 130
    assert b"produced 2 records to t" in err and b"interrupted" in err
    consumed = run("consume", "t", "--from-beginning", "--timeout-ms", "300", "--data-dir", store)
    assert sorted(consumed.stdout.splitlines()) == [b"one", b"two"]


def test_a_reader_follows_what_a_writer_process_adds(store: str) -> None:
    reader = start("consume", "t", "--max-messages", "3", "--data-dir", store)
    # The reader starts at the end; write until it has seen three records written after that.
    deadline = time.monotonic() + 30
    written = 0
    while reader.poll() is None and time.monotonic() < deadline:
        produced = run("produce", "t", "--data-dir", store, stdin=b"new %d\n" % written)
        assert produced.returncode == 0, produced.stderr
        written += 1
        time.sleep(0.2)
    out, err = reader.communicate(timeout=30)
    assert reader.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 3 and all(line.startswith(b"new ") for line in lines)


def _wait_until_visible(store: str, count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        read = run("consume", "t", "--from-beginning", "--timeout-ms", "100", "--data-dir", store)
        if len(read.stdout.splitlines()) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} records became visible to a reader")
