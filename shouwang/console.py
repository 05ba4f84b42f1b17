"""The command line: the console its commands report on (stderr), logging set up on it
(``core.logs``: JSON lines off a terminal, Rich on one), and :func:`run_logged`, how a command
runs a stage's or a benchmark's ``main``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Concatenate, ParamSpec

from rich.console import Console
from rich.logging import RichHandler

from core.logs import LogFormat, configure
from core.settings import Settings, load_settings

# soft_wrap: a message is never folded mid-word, so a path or a file:line in it can be copied
console = Console(stderr=True, soft_wrap=True)

P = ParamSpec("P")


def setup_logging(stage: str = "cli", *, fmt: LogFormat = "auto", verbose: bool = False) -> None:
    """Log the events of ``stage`` to stderr (``core.logs``), with Rich when it is a terminal."""
    human = RichHandler(console=console, show_path=False, rich_tracebacks=False)
    human.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    configure(stage, fmt=fmt, verbose=verbose, stream=sys.stderr, human=human)


def run_logged(
    main: Callable[Concatenate[Settings, P], object], *args: P.args, **kwargs: P.kwargs
) -> None:
    """Log to the console and run ``main(settings, *args, **kwargs)`` on the configured settings
    (what it returns is not looked at: it prints what it has to say). The events' stage is the
    package ``main`` is in (ingest, analytics, notify, api, simulators, bench, ...)."""
    s = load_settings()
    setup_logging(main.__module__.split(".")[0], fmt=s.log_format)
    main(s, *args, **kwargs)
