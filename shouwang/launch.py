"""The command line: start a ``shouwang`` command as a process of its own (the demo's stages,
ingest workers, benchmarks and tests all start processes this one way)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any


def command(*args: str) -> list[str]:
    """The argv that runs ``shouwang ARGS`` with this interpreter."""
    return [sys.executable, "-m", "shouwang", *args]


def start(*args: str, **popen: Any) -> subprocess.Popen[bytes]:
    """``shouwang ARGS`` started in the background; ``popen`` goes to :class:`subprocess.Popen`."""
    return subprocess.Popen(command(*args), **popen)
