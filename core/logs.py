"""Shared: how every stage logs. One event per line, on stderr: a JSON object when that stream is
not a terminal (containers, CI, files: ``SHOUWANG_LOG_FORMAT=auto``), a human line on a terminal;
``json`` or ``human`` choose one. Every event carries the stage that wrote it, and its
correlation id when it has one (``cid``, :mod:`core.correlation`). Secrets never reach a line:
passwords in URLs and connection strings, tokens, keys and signatures in query strings and
fields, bearer tokens, webhook secrets and signatures, and acknowledgement links are replaced
by ``***`` in the message, its arguments, its extra fields and tracebacks.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

from core.correlation import correlation_id  # the one derivation, for the stages' convenience

__all__ = [
    "HUMAN_FORMAT",
    "QUIET_LOGGERS",
    "UVICORN_LOGGERS",
    "Context",
    "JsonLines",
    "LogFormat",
    "configure",
    "correlation_id",
    "redact",
    "wants_json",
]

LogFormat = Literal["auto", "json", "human"]

HUMAN_FORMAT = "%(asctime)s %(levelname)s [%(stage)s] %(name)s: %(message)s"

# (pattern, replacement): each keeps what identifies the thing and drops the secret.
_REDACTIONS: list[tuple[re.Pattern[str], str]] = [
    # scheme://user:password@host
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^@\s]+@"), r"\1***@"),
    # conninfo / form fields: password=..., secret=...
    (
        re.compile(
            r"\b(password|passwd|pwd|secret|token|access_token|access_key_secret|api_key"
            r"|accesskeysecret|secret_key|secretkey|signature|sign)"
            r"(\s*=\s*)(?:'[^']*'|\"[^\"]*\"|[^\s&,;)]+)",
            re.IGNORECASE,
        ),
        r"\1\2***",
    ),
    # query strings: ?key=..., &sign=...
    (
        re.compile(r"([?&](?:key|sign|signature|sig|code)=)[^&\s#'\"]+", re.IGNORECASE),
        r"\1***",
    ),
    # "password": "...", 'token': '...' (a dict or JSON in a message)
    (
        re.compile(
            r"""(['"](?:password|passwd|secret|token|access_token|api_key|authorization"""
            r"""|access_key_secret|accesskeysecret|secret_key|secretkey|signature|sign)['"]"""
            r"""\s*:\s*)(['"])[^'"]*\2""",
            re.IGNORECASE,
        ),
        r"\1\2***\2",
    ),
    # Authorization: Bearer ..., Basic ...
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
    # signed acknowledgement links: .../ack/<token>
    (re.compile(r"(/ack/)[^/\s?#'\"]+"), r"\1***"),
    # a webhook channel's signing secret (Standard Webhooks) and a signature made with it
    (re.compile(r"\b(whsec_)[A-Za-z0-9+/=]+"), r"\1***"),
    (re.compile(r"\b(v1,)[A-Za-z0-9+/]{20,}={0,2}"), r"\1***"),
]

# Attributes every LogRecord has; anything else came in through ``extra=`` and is logged.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "stage",
    "taskName",
    "color_message",  # uvicorn's coloured copy of the message
}


def redact(text: str) -> str:
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class Context(logging.Filter):
    """Stamps each record with its stage and redacts it, once, before any handler formats it."""

    def __init__(self, stage: str) -> None:
        super().__init__()
        self.stage = stage

    def filter(self, record: logging.LogRecord) -> bool:
        record.stage = self.stage
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # wrong arguments: the handler reports it, as ever
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonLines(logging.Formatter):
    """One JSON object per event, on one line (newlines inside are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "stage": getattr(record, "stage", ""),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                event[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            event["exception"] = record.exc_text
        if record.stack_info:
            event["stack"] = redact(record.stack_info)
        return json.dumps(event, ensure_ascii=False, default=str)


def wants_json(fmt: LogFormat, stream: TextIO) -> bool:
    if fmt != "auto":
        return fmt == "json"
    isatty = getattr(stream, "isatty", None)
    return not (isatty is not None and isatty())


UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
# httpx logs every request at INFO with its full URL, and a robot's or webhook's URL is a
# credential (its key or token in the path or the query): only their warnings are logged; notify
# logs each delivery itself, without the address.
QUIET_LOGGERS = ("httpx", "httpcore")


def configure(
    stage: str,
    *,
    fmt: LogFormat = "auto",
    verbose: bool = False,
    stream: TextIO | None = None,
    human: logging.Handler | None = None,
) -> logging.Handler:
    """Route the process's logging to one handler on ``stream`` (default stderr) for ``stage``;
    ``human`` is the handler for a terminal (default: plain lines). Replaces earlier handlers,
    so a stage's ``main`` may call it again. Returns the handler."""
    stream = sys.stderr if stream is None else stream
    handler: logging.Handler
    if wants_json(fmt, stream):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonLines())
    else:
        handler = human if human is not None else logging.StreamHandler(stream)
        if human is None:
            handler.setFormatter(logging.Formatter(HUMAN_FORMAT))
    handler.addFilter(Context(stage))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # The server's loggers may carry handlers and levels of their own (uvicorn's default logging
    # config, its log_level): they go through this one handler too, redacted like the rest.
    for name in UVICORN_LOGGERS:
        server = logging.getLogger(name)
        for old in server.handlers[:]:
            server.removeHandler(old)
        server.propagate = True
        server.setLevel(logging.NOTSET)  # the root's level decides, as for every other logger
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler
