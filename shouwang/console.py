"""The command line: the console its commands report on (stderr), logging set up on it, and
:func:`run_logged`, how a command runs a stage's or a benchmark's ``main``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Concatenate, ParamSpec

from rich.console import Console
from rich.logging import RichHandler

from core.settings import Settings, load_settings

# soft_wrap: a message is never folded mid-word, so a path or a file:line in it can be copied
console = Console(stderr=True, soft_wrap=True)

P = ParamSpec("P")


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(name)s: %(message)s",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=False)],
    )


def run_logged(
    main: Callable[Concatenate[Settings, P], object], *args: P.args, **kwargs: P.kwargs
) -> None:
    """Log to the console and run ``main(settings, *args, **kwargs)`` on the configured settings
    (what it returns is not looked at: it prints what it has to say)."""
    setup_logging()
    main(load_settings(), *args, **kwargs)
