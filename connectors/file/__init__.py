"""The ``file`` connector: lines of files in, lines of files out.

- :class:`FileSource` reads files matching a path or glob, once or followed like ``tail -F``
  (rotation, truncation and new files noticed through watchdog), as ``lines``, ``jsonl`` or
  ``csv``; resumable from ``(path, inode, offset)``.
- :class:`FileSink` writes ``jsonl``, ``csv`` or ``lines`` files named by a template, rolled by
  size and age, each written under a hidden temporary name and renamed when complete.
"""

from __future__ import annotations

from .sink import FileSink, FileSinkConfig
from .source import FileSource, FileSourceConfig

__all__ = ["FileSink", "FileSinkConfig", "FileSource", "FileSourceConfig"]
