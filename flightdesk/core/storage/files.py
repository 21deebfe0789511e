"""Files only the desk's user may read: the store (SQLite db, ``-wal``, ``-shm``) and the
raw captures hold orders, fills and whatever the venues sent, so they are created 0600."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE = 0o600


def create_private(path: Path) -> None:
    """Create ``path`` (empty) readable and writable by its owner only, unless it exists."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE))


def make_private(*paths: Path) -> None:
    """Restrict the existing ones of ``paths`` to their owner (files from older versions)."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError, PermissionError):
            os.chmod(path, PRIVATE)
