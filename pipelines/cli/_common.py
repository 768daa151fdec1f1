"""What the pipeline commands share: loading pipeline files and choosing their store."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

from millstream.core.cli._args import UsageError, store_url
from millstream.core.client import DEFAULT_STORE
from millstream.core.errors import ConfigError
from millstream.core.plugins import Registry, get_registry

from ..plan import Pipeline

__all__ = ["load_files", "pipeline_store", "registry_of"]


def registry_of(args: argparse.Namespace) -> Registry:
    return get_registry(getattr(args, "plugins", None))


def load_files(args: argparse.Namespace, files: list[Path]) -> list[Pipeline]:
    """The pipelines of ``files``, validated; an invalid one is a usage error (exit 2)."""
    from ..spec import load_pipelines

    try:
        return load_pipelines(files, registry=registry_of(args))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        name = exc.filename or (files[0] if files else "")
        raise UsageError(f"cannot read pipeline file {str(name)!r}: {exc.strerror}") from None


def pipeline_store(
    args: argparse.Namespace, pipelines: list[Pipeline], env: Mapping[str, str] | None = None
) -> str:
    """The store to run ``pipelines`` on: ``--store`` (or ``--data-dir``,
    ``--bootstrap-server``), then MILLSTREAM_STORE / MILLSTREAM_DATA_DIR, then the files'
    ``store:`` (which must agree), then the default."""
    environ = os.environ if env is None else env
    flagged = any(getattr(args, k, None) for k in ("store", "data_dir", "bootstrap_server"))
    if flagged or environ.get("MILLSTREAM_STORE") or environ.get("MILLSTREAM_DATA_DIR"):
        return store_url(args)
    stores = {p.store for p in pipelines if p.store}
    if len(stores) > 1:
        listed = ", ".join(f"{p.file}: {p.store}" for p in pipelines if p.store)
        raise UsageError(
            f"the pipeline files name different stores ({listed}); one run uses one store: "
            "give --store, or make them agree"
        )
    return stores.pop() if stores else DEFAULT_STORE
