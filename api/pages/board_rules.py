"""API (community notice board): the rules of what a firm may publish on it (pure).

Public phones in the forms a notice board shows in China, fee units, and spending periods (a
month ``2026-11``, a quarter ``2026Q3`` or a year ``2026``). Every refusal is a
:class:`BoardRule` whose message says what to write instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Final

MAX_AMOUNT: Final = Decimal("9999999999.99")  # numeric(12, 2)
MAX_FEES: Final = 50
# What a fee is per: (Chinese, English); the keys are migration 0031's.
FEE_UNITS: Final[dict[str, tuple[str, str]]] = {
    "m2_month": ("元/平方米·月", "yuan per m² a month"),
    "household_month": ("元/户·月", "yuan per household a month"),
    "space_month": ("元/车位·月", "yuan per parking space a month"),
    "month": ("元/月", "yuan a month"),
    "year": ("元/年", "yuan a year"),
    "visit": ("元/次", "yuan a visit"),
    "hour": ("元/小时", "yuan an hour"),
    "kwh": ("元/千瓦时", "yuan per kWh"),
    "m3": ("元/立方米", "yuan per m³"),
}
UNIT_KINDS: Final[dict[str, tuple[str, str]]] = {
    "elevator": ("电梯维保单位", "Elevator maintenance"),
    "fire": ("消防维保单位", "Fire maintenance"),
    "water": ("二次供水维保单位", "Water supply maintenance"),
}

PHONE_HELP: Final = (
    "write a public phone as a mobile number (11 digits, e.g. 13800000000), a landline with its"
    " area code (0571-88888888, an extension as -123), a 400/800 number (400-123-4567) or a"
    " service hotline of 5 or 6 digits (12345, 96333)"
)
_PHONES: Final = (
    re.compile(r"1[3-9]\d{9}"),  # mobile
    re.compile(r"0\d{2,3}-?\d{7,8}(-\d{1,6})?"),  # landline, area code first
    re.compile(r"[48]00-?\d{3}-?\d{4}"),  # nationwide service numbers
    re.compile(r"(1\d{4}|9\d{4,5})"),  # hotlines: 12345, 96333, 95xxx
)
_PERIOD: Final = re.compile(r"(?P<y>\d{4})(?:Q(?P<q>[1-4])|-(?P<m>\d{2}))?")


class BoardRule(ValueError):
    """A value the notice board does not take; the message says what to change."""


def public_phone(raw: str) -> str:
    """``raw`` as shown on the board: spaces dropped, a leading +86 / 86- dropped from a mobile
    number; refused unless it is one of the forms of :data:`PHONE_HELP`."""
    phone = re.sub(r"\s+", "", raw)
    m = re.fullmatch(r"(?:\+?86-?)(1[3-9]\d{9})", phone)
    if m:
        phone = m.group(1)
    if not phone:
        raise BoardRule("a phone number is required: " + PHONE_HELP)
    if not any(p.fullmatch(phone) for p in _PHONES):
        raise BoardRule(f"{raw!r} is not a phone number the board can show: {PHONE_HELP}")
    return phone


def amount(raw: Decimal | int | float | str) -> Decimal:
    """A fee or spending amount in yuan: finite, at least 0, at most two decimals."""
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise BoardRule(f"{raw!r} is not an amount: write yuan as a number, e.g. 1.80") from None
    if not value.is_finite():
        raise BoardRule("an amount is a finite number of yuan, e.g. 1.80")
    if value < 0:
        raise BoardRule("an amount is 0 or more yuan")
    if value > MAX_AMOUNT:
        raise BoardRule(f"an amount is at most {MAX_AMOUNT} yuan")
    if value != value.quantize(Decimal("0.01")):
        raise BoardRule("an amount has at most two decimals (fen), e.g. 1.85")
    return value.quantize(Decimal("0.01"))


@dataclass(frozen=True, slots=True)
class Period:
    """A spending period: ``start`` inclusive, ``end`` exclusive."""

    start: date
    end: date

    @property
    def label(self) -> str:
        return label(self.start, self.end)


def period(text: str) -> Period:
    """``2026-11`` (a month), ``2026Q3`` (a quarter) or ``2026`` (a year)."""
    m = _PERIOD.fullmatch(text.strip())
    if m is None:
        raise BoardRule(
            f"{text!r} is not a period: write a month as 2026-11, a quarter as 2026Q3"
            " or a year as 2026"
        )
    y = int(m["y"])
    if not 2000 <= y <= 2100:
        raise BoardRule(f"the year {y} is out of range (2000 to 2100)")
    if m["q"]:
        q = int(m["q"])
        start = date(y, 3 * q - 2, 1)
        return Period(start, date(y + 1, 1, 1) if q == 4 else date(y, 3 * q + 1, 1))
    if m["m"]:
        month = int(m["m"])
        if not 1 <= month <= 12:
            raise BoardRule(f"{text!r}: a month is 01 to 12")
        start = date(y, month, 1)
        return Period(start, date(y + 1, 1, 1) if month == 12 else date(y, month + 1, 1))
    return Period(date(y, 1, 1), date(y + 1, 1, 1))


def label(start: date, end: date) -> str:
    """The period's name as :func:`period` reads it back; else ``start–end`` (exclusive end)."""
    for text in (f"{start.year}", f"{start.year}Q{(start.month + 2) // 3}", f"{start:%Y-%m}"):
        try:
            p = period(text)
        except BoardRule:
            continue
        if (p.start, p.end) == (start, end):
            return text
    return f"{start.isoformat()}–{end.isoformat()}"
