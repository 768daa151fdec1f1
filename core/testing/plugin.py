"""The millstream pytest plugin (entry point ``pytest11``), active wherever millstream is
installed.

For the whole test session it sets ``MILLSTREAM_ENTRY_POINTS=0``, so that plugins installed in
the environment are not loaded behind a test's back (see :mod:`millstream.core.plugins`); a
test that wants them asks with ``load_registry(entry_points=True)``, or runs a command in a
subprocess with that variable removed from its environment. The conformance kit itself is
imported from :mod:`millstream.core.testing`.
"""

from __future__ import annotations

import os

import pytest

__all__ = ["pytest_configure", "pytest_unconfigure"]

_ENV = "MILLSTREAM_ENTRY_POINTS"
_before = pytest.StashKey[str | None]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_before] = os.environ.get(_ENV)
    os.environ[_ENV] = "0"


def pytest_unconfigure(config: pytest.Config) -> None:
    before = config.stash.get(_before, None)
    if before is None:
        os.environ.pop(_ENV, None)
    else:
        os.environ[_ENV] = before
