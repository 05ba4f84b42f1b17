"""Helpers of the benchmark commands' tests (`shouwang bench api`, `shouwang bench pages`): a
database of the run's own (the commands seed the demo county into it), one short run as a
subprocess, and the check of each figure line it prints."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from core.settings import Settings
from tests.conftest import fresh_database, settings_env, shouwang

FIGURES = (
    r" +([\d,]+) req/s p50 +([\d.]+) ms p99 +([\d.]+) ms \((\d+) ok, 0 errors\) p99 < 100 ms:"
    r" (yes|NO)"
)


@contextmanager
def bench_database(name: str) -> Iterator[str]:
    """An empty, migrated database ``shouwang_<name>_<pid>``: its URL; dropped afterwards."""
    with fresh_database(f"shouwang_{name}_{os.getpid()}") as url:
        yield url


def run_bench(settings: Settings, database: str, *args: str) -> str:
    """``shouwang bench ARGS`` on ``database``; its output with white space folded."""
    env = settings_env(settings) | {"SHOUWANG_DATABASE_URL": database}
    out = subprocess.run(
        shouwang("bench", *args), env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr + out.stdout
    return " ".join(out.stdout.split())


def assert_figures(text: str, label: str) -> None:
    """The figure line of ``label`` (a regex) is there, with requests, no errors and p50 <= p99."""
    m = re.search(label + FIGURES, text)
    assert m is not None, f"no figures for {label!r} in: {text}"
    assert int(m.group(4)) > 0 and float(m.group(2)) <= float(m.group(3)), m.group(0)
