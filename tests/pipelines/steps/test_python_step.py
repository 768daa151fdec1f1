"""The python step: functions on events or batches, plain or async."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from millstream.core.errors import ConfigError
from millstream.core.event import Event
from millstream.pipelines.steps import PythonStep

CODE = """
import asyncio
from millstream.core import Event

def double(event):
    return {**event.value, "n": event.value["n"] * 2}

def explode(event):
    return [{"i": i} for i in range(event.value["n"])]

def drop_odd(event):
    return None if event.value["n"] % 2 else event.value

def rekey(event):
    return Event(event.value, key=b"new", timestamp=7)

def touchy(event):
    if event.value["n"] == 2:
        raise ValueError("two is not allowed")
    return event.value

async def slow(event):
    await asyncio.sleep(0.01 * (3 - event.value["n"]))
    if event.value["n"] == 1:
        raise RuntimeError("async failure")
    return {"n": event.value["n"], "done": True}

def count(events):
    return [{"batch": len(events), **e.value} for e in events]

def summary(events):
    return [{"total": sum(e.value["n"] for e in events)}]

async def async_batch(events):
    await asyncio.sleep(0)
    return events[::-1]

def broken_batch(events):
    raise KeyError("nope")

def nothing(events):
    return None

NOT_A_FUNCTION = 3
"""


@pytest.fixture
def module(tmp_path: Path) -> str:
    name = f"transforms_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(CODE))
    return name


def values(n: int) -> list[dict[str, int]]:
    return [{"n": i} for i in range(n)]


async def test_a_function_returning_a_new_value(harness, module: str) -> None:
    event = Event({"n": 2}, key=b"k", timestamp=5, topic="t", partition=0, offset=3)
    out, _ = await harness.run((PythonStep, f"{module}:double"), [event])
    assert out[0].value == {"n": 4}
    assert (out[0].key, out[0].timestamp, out[0].offset) == (b"k", 5, 3)


async def test_a_list_makes_several_events_and_none_drops(harness, module: str) -> None:
    out = await harness.values((PythonStep, f"{module}:explode"), [{"n": 2}, {"n": 0}, {"n": 1}])
    assert out == [{"i": 0}, {"i": 1}, {"i": 0}]
    assert await harness.values((PythonStep, f"{module}:drop_odd"), values(4)) == [
        {"n": 0},
        {"n": 2},
    ]


async def test_an_event_returned_replaces_the_event(harness, module: str) -> None:
    out, _ = await harness.run((PythonStep, f"{module}:rekey"), values(1))
    assert (out[0].key, out[0].timestamp) == (b"new", 7)


async def test_an_exception_rejects_only_that_event(harness, module: str) -> None:
    out, rejected = await harness.run((PythonStep, f"{module}:touchy"), values(4))
    assert [e.value["n"] for e in out] == [0, 1, 3]
    assert rejected[0].event.value == {"n": 2}
    assert rejected[0].reason == "ValueError: two is not allowed"


async def test_async_functions_run_concurrently_and_keep_order(harness, module: str) -> None:
    out, rejected = await harness.run((PythonStep, f"{module}:slow"), values(3))
    assert [e.value for e in out] == [{"n": 0, "done": True}, {"n": 2, "done": True}]
    assert rejected[0].reason == "RuntimeError: async failure"


async def test_batch_functions(harness, module: str) -> None:
    batch = {"function": f"{module}:count", "batch": True}
    out = await harness.values((PythonStep, batch), values(2))
    assert out == [{"batch": 2, "n": 0}, {"batch": 2, "n": 1}]
    summary = {"function": f"{module}:summary", "batch": True}
    assert await harness.values((PythonStep, summary), values(4)) == [{"total": 6}]
    reverse = {"function": f"{module}:async_batch", "batch": True}
    assert await harness.values((PythonStep, reverse), values(3)) == [{"n": 2}, {"n": 1}, {"n": 0}]
    nothing = {"function": f"{module}:nothing", "batch": True}
    assert await harness.values((PythonStep, nothing), values(3)) == []


async def test_a_batch_function_that_raises_rejects_the_batch(harness, module: str) -> None:
    step = (PythonStep, {"function": f"{module}:broken_batch", "batch": True})
    out, rejected = await harness.run(step, values(3))
    assert out == [] and len(rejected) == 3
    assert {r.reason for r in rejected} == {"KeyError: 'nope'"}


async def test_a_function_from_an_installed_module(harness) -> None:
    out = await harness.values((PythonStep, "dataclasses:astuple"), [1])
    assert out == [(1, None, (), 0, None, None, None)]
    same = {"function": "builtins:list", "batch": True}
    assert await harness.values((PythonStep, same), [1, 2]) == [1, 2]


def _write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text))
    return folder


async def test_modules_of_one_name_in_two_folders_stay_apart(harness, tmp_path: Path) -> None:
    for name in ("a", "b"):
        _write(tmp_path / name, {"transforms.py": f"def tag(e):\n    return '{name}'\n"})
    first = type(harness)(tmp_path / "a").build(PythonStep, "transforms:tag")
    second = type(harness)(tmp_path / "b").build(PythonStep, "transforms:tag")
    again = type(harness)(tmp_path / "a").build(PythonStep, "transforms:tag")
    assert await harness.values(first, [1]) == ["a"]
    assert await harness.values(second, [1]) == ["b"]
    assert again.function is first.function  # loaded once per file
    assert "transforms" not in sys.modules


async def test_a_module_beside_the_file_comes_before_an_installed_one(harness) -> None:
    _write(harness.base_dir, {"string.py": "def shout(e):\n    return e.value.upper()\n"})
    assert await harness.values((PythonStep, "string:shout"), ["hi"]) == ["HI"]
    import string

    assert not hasattr(string, "shout") and string.digits == "0123456789"  # stdlib untouched


async def test_a_module_beside_the_file_imports_its_neighbours(harness) -> None:
    _write(
        harness.base_dir,
        {
            "helpers_x1.py": "SUFFIX = '!'\n",
            "local_steps.py": "import helpers_x1\n"
            "def mark(e):\n    return e.value + helpers_x1.SUFFIX\n",
            "mypkg_x1/__init__.py": "",
            "mypkg_x1/steps.py": "from . import util\n"
            "def mark(e):\n    return util.mark(e.value)\n",
            "mypkg_x1/util.py": "def mark(v):\n    return v + '?'\n",
            "nspkg_x1/steps.py": "def mark(e):\n    return e.value + '~'\n",
        },
    )
    assert await harness.values((PythonStep, "local_steps:mark"), ["a"]) == ["a!"]
    assert await harness.values((PythonStep, "mypkg_x1.steps:mark"), ["a"]) == ["a?"]
    assert await harness.values((PythonStep, "nspkg_x1.steps:mark"), ["a"]) == ["a~"]


def test_millstream_test_runs_each_folders_own_module(tmp_path: Path) -> None:
    for name in ("a", "b"):
        _write(
            tmp_path / name,
            {
                "transforms.py": f"""
                    def tag(event):
                        return {{**event.value, "by": "{name}"}}
                """,
                "p.yaml": f"""
                    pipeline: p{name}
                    topics: {{in: {{}}, out: {{}}}}
                    routes:
                      r: {{from: in, to: out, steps: [python: "transforms:tag"]}}
                    tests:
                      - route: r
                        input: [{{value: {{x: 1}}}}]
                        expect: {{out: [{{value: {{x: 1, by: {name}}}}}]}}
                """,
            },
        )
    done = subprocess.run(
        [str(Path(sys.executable).with_name("millstream")), "test", "a/p.yaml", "b/p.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 tests: all passed" in done.stdout


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("no_such_module_here:f", "cannot import module 'no_such_module_here'"),
        ("{module}:missing", "has no 'missing'"),
        ("{module}:NOT_A_FUNCTION", "is int, not a function"),
    ],
)
def test_a_bad_reference_is_a_located_config_error(
    harness, module: str, reference: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        harness.pipeline(f"- python: {reference.format(module=module)}")
    assert caught.value.line == 10 and message in caught.value.message


@pytest.mark.parametrize("argument", ["no-colon", "a:b:c", {"function": "m:f", "batch": "x"}, 5])
def test_bad_arguments(harness, argument: object) -> None:
    with pytest.raises(ValidationError):
        harness.build(PythonStep, argument)
