"""The command line: ``shouwang evaluate``, scoring alarms against a firm's labelled faults.

It reads only files: no database, no broker. The scoring is :mod:`analytics.evaluation`'s; this
shell reads the files, settles the span, prints a table (or JSON with ``--json``) on stdout and
warnings on stderr, and turns every bad input into a one-line error and exit status 2.
"""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from core.errors import ConfigError, ShouwangError
from shouwang.console import console

if TYPE_CHECKING:
    from analytics.evaluation import FloatArray, Scorecard, Window

app = typer.Typer()

# Each file is read with this encoding: UTF-8, with or without the byte-order mark Excel writes.
ENCODING = "utf-8-sig"
MISSED_SHOWN = 20


@app.command()
def evaluate(
    alarms: Annotated[
        Path, typer.Argument(help="CSV of alarms: start (or time) and optional end columns")
    ],
    labels: Annotated[Path, typer.Argument(help="CSV of labelled faults: start and end columns")],
    rows: Annotated[
        Path | None,
        typer.Option(help="the scored data CSV: point-wise scores per row, and the span"),
    ] = None,
    time_column: Annotated[
        str | None, typer.Option(help="time column of --rows (default: the first column)")
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="start of the scored span (default: from --rows)")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="end of the scored span (default: from --rows)")
    ] = None,
    early: Annotated[
        str, typer.Option(help="an alarm up to this long before a fault finds it (90s, 10m, 2h)")
    ] = "0",
    deadline: Annotated[
        str | None,
        typer.Option(
            help="an alarm later than this after a fault's start misses it (default: its end)"
        ),
    ] = None,
    time_format: Annotated[
        str | None,
        typer.Option(help="strptime format or 'epoch' for every file's times (default: ISO 8601)"),
    ] = None,
    tz: Annotated[str, typer.Option(help="IANA time zone of times without an offset")] = (
        "Asia/Shanghai"
    ),
    sep: Annotated[
        str,
        typer.Option(
            help="field separator of the files (',', ';', 'tab'); a file whose header holds none "
            "of it is read with the one it holds (replay's episodes: ',')"
        ),
    ] = ",",
    as_json: Annotated[bool, typer.Option("--json", help="print the scorecard as JSON")] = False,
) -> None:
    """Score alarms against labelled fault windows: faults found, delays, false alarms per day,
    point-wise precision/recall/F1 and the BATADAL score (definitions: docs/analytics.md)."""
    try:
        card, zone_ = _score(
            alarms, labels, rows, time_column, from_, until, early, deadline, time_format, tz, sep
        )
    except ShouwangError as e:
        console.print(f"[bold red]error:[/] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(2) from None
    if as_json:
        text = json.dumps(card.to_dict(lambda t: _iso(t, zone_)), allow_nan=False, indent=2)
        typer.echo(text)
    else:
        _print(card, zone_, Console())


def _score(
    alarms_path: Path,
    labels_path: Path,
    rows_path: Path | None,
    time_column: str | None,
    from_: str | None,
    until: str | None,
    early: str,
    deadline: str | None,
    time_format: str | None,
    tz_name: str,
    sep: str,
) -> tuple[Scorecard, tzinfo]:
    from analytics.evaluation import Window, evaluate, read_alarms, read_labels, read_row_times
    from analytics.timeparse import parse_duration, parse_time, zone

    tz = zone(tz_name)
    delimiter = _separator(sep)
    early_s = parse_duration(early, "--early")
    deadline_s = None if deadline is None else parse_duration(deadline, "--deadline")
    start = None if from_ is None else parse_time(from_, time_format, tz, "--from")
    end = None if until is None else parse_time(until, time_format, tz, "--until")
    with _open(alarms_path) as f:
        alarms = read_alarms(f, str(alarms_path), fmt=time_format, tz=tz, sep=delimiter)
    with _open(labels_path) as f:
        labels = read_labels(f, str(labels_path), fmt=time_format, tz=tz, sep=delimiter)
    row_times: FloatArray | None = None
    if rows_path is not None:
        with _open(rows_path) as f:
            row_times = read_row_times(
                f, str(rows_path), time_column=time_column, fmt=time_format, tz=tz, sep=delimiter
            )
        if len(row_times) == 0:
            raise ConfigError(str(rows_path), "has a header but no rows to score")
        start = float(row_times.min()) if start is None else start
        end = float(row_times.max()) if end is None else end
    if start is None or end is None:
        start, end = _span_of(alarms, labels, start, end, tz)
    if end < start:
        raise ConfigError("--from/--until", "the span ends before it starts")
    span = Window(start, end)
    card = evaluate(
        alarms, labels, span=span, rows=row_times, early_s=early_s, deadline_s=deadline_s
    )
    _warn(card, alarms_path, labels_path)
    return card, tz


def _span_of(
    alarms: list[Window], labels: list[Window], start: float | None, end: float | None, tz: tzinfo
) -> tuple[float, float]:
    everything = [*alarms, *labels]
    if not everything:
        raise ConfigError(
            "evaluate", "there are no alarms and no labels; give --rows or --from and --until"
        )
    start = min(w.start for w in everything) if start is None else start
    end = max(w.end for w in everything) if end is None else end
    console.print(
        f"[yellow]warning:[/] the span is taken from the labels and alarms "
        f"({_iso(start, tz)} to {_iso(end, tz)}); give --rows or --from/--until so that normal "
        "time without alarms counts",
        soft_wrap=True,
    )
    return start, end


def _warn(card: Scorecard, alarms: Path, labels: Path) -> None:
    notes = []
    if card.alarms_outside_span:
        notes.append(f"{card.alarms_outside_span} alarm(s) of {alarms} lie outside the span")
    if card.labels_outside_span:
        notes.append(f"{card.labels_outside_span} label(s) of {labels} lie outside the span")
    if card.pointwise == "time" and card.point_alarms:
        notes.append(
            f"{card.point_alarms} point alarm(s) carry no time in the time-weighted point-wise "
            "scores; give --rows to score them per row"
        )
    for note in notes:
        console.print(f"[yellow]warning:[/] {escape(note)}", soft_wrap=True)


def _separator(sep: str) -> str:
    named = {"tab": "\t", "\\t": "\t"}.get(sep, sep)
    if len(named) != 1 or named in '\r\n"':
        raise ConfigError("--sep", f"give one character (',', ';' or 'tab'), not {sep!r}")
    return named


def _open(path: Path) -> TextIO:
    try:
        return path.open(encoding=ENCODING, newline="")
    except OSError as e:
        raise ConfigError(str(path), f"cannot be read: {e.strerror or e}") from None


def _iso(t: float, tz: tzinfo) -> str:
    spec = "seconds" if float(t).is_integer() else "milliseconds"
    try:
        return datetime.fromtimestamp(t, tz).isoformat(timespec=spec)
    except (ValueError, OverflowError, OSError):  # beyond year 9999 in this zone
        return f"{t:.3f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    sign, s = ("-" if seconds < 0 else ""), abs(seconds)
    if s < 59.5:
        return f"{sign}{s:.3g}s"
    if round(s) < 3600:
        m, rest = divmod(round(s), 60)
        return f"{sign}{m}m {rest:02d}s"
    if round(s / 60) < 1440:
        h, rest = divmod(round(s / 60), 60)
        return f"{sign}{h}h {rest:02d}m"
    return f"{sign}{s / 86400:.2f}d"


def _share(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _print(card: Scorecard, tz: tzinfo, out: Console) -> None:
    days = (card.span.end - card.span.start) / 86400
    table = Table(
        title=f"{_iso(card.span.start, tz)} to {_iso(card.span.end, tz)} ({days:.2f} days)",
        show_header=False,
    )
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    table.add_column("", style="dim")
    recall = "-" if card.recall is None else f"{card.recall:.1%}"
    table.add_row("faults found", f"{card.found} of {card.faults}", f"event recall {recall}")
    table.add_row(
        "detection delay",
        f"{_duration(card.median_delay_s)} / {_duration(card.p90_delay_s)}",
        "median / p90 from the fault's start",
    )
    per_day = "-" if card.false_alarms_per_day is None else f"{card.false_alarms_per_day:.2f}"
    table.add_row(
        "false alarms",
        f"{card.false_alarms} of {card.alarms}",
        f"{per_day} per day over {card.normal_days:.2f} normal days",
    )
    how = "per row" if card.pointwise == "rows" else "time-weighted"
    table.add_row("point-wise precision", _share(card.point_precision), how)
    table.add_row("point-wise recall", _share(card.point_recall), how)
    table.add_row("point-wise F1", _share(card.point_f1), how)
    table.add_row("BATADAL S_TTD", _share(card.s_ttd), "1 - mean(delay / fault length)")
    table.add_row("BATADAL S_CM", _share(card.s_cm), "(TPR + TNR) / 2")
    table.add_row("BATADAL S", _share(card.s), "(S_TTD + S_CM) / 2")
    deadline = "the fault's end" if card.deadline_s is None else _duration(card.deadline_s)
    table.add_row("early / deadline", _duration(card.early_s), deadline)
    out.print(table)
    if card.missed:
        missed = Table(title=f"missed faults ({len(card.missed)})")
        for column in ("start", "end", "name"):
            missed.add_column(column)
        for w in card.missed[:MISSED_SHOWN]:
            missed.add_row(_iso(w.start, tz), _iso(w.end, tz), escape(w.name))
        if len(card.missed) > MISSED_SHOWN:
            missed.add_row("...", "", f"{len(card.missed) - MISSED_SHOWN} more (see --json)")
        out.print(missed)
