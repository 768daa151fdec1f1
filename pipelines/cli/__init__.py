"""The pipeline commands of the ``millstream`` command line, added through the plugin hook
``register_commands`` like any plugin's: run, validate, schema, graph, test, offsets, replay."""

from __future__ import annotations

import argparse

from millstream.core.hookspecs import hookimpl

from . import _graph, _offsets, _replay, _run, _schema, _test, _validate

__all__: list[str] = []

_AREAS = (_run, _validate, _schema, _graph, _test, _offsets, _replay)


@hookimpl
def register_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    for area in _AREAS:
        area.register(commands, parents)
