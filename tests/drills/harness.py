"""Tests: run one drill of ``bench.drills.run`` as the command does, its printed lines kept for
the assertions' messages."""

from __future__ import annotations

import io

from rich.console import Console

from bench.drills.figures import Figures
from bench.drills.run import Drill, Options
from core.settings import Settings


def drill(settings: Settings, opts: Options) -> tuple[Figures, str]:
    """The drill's figures and what it printed."""
    out = io.StringIO()
    figures = Drill(settings, opts, Console(file=out, width=200)).run()
    return figures, out.getvalue()
