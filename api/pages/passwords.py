"""API (duty pages): phone numbers and passwords of person logins (pure, apart from argon2's
CPU and memory: a hash takes tens of milliseconds on purpose, so callers run it in a thread).

Passwords are hashed with argon2id (``argon2-cffi``'s RFC 9106 low-memory profile: 64 MiB,
3 passes), so a stolen table is slow to guess through even on GPUs.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY

MIN_PASSWORD_CHARS: Final = 10
MAX_PASSWORD_CHARS: Final = 200
_PHONE: Final = re.compile(r"\+?[0-9]{5,20}")
_HASHER: Final = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)


@cache
def _dummy() -> str:
    """Verified against when the phone number is unknown, so that case takes as long as a wrong
    password and the answer's timing does not tell which numbers have logins (made on first
    use: a hash takes 64 MiB for a moment)."""
    return _HASHER.hash("not a password of anyone's")


class PasswordRule(ValueError):
    """A new password or phone number that may not be used; the message says what to change."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def phone_number(raw: str) -> str:
    """The phone number as stored: spaces and dashes dropped; digits with an optional '+'."""
    phone = re.sub(r"[\s\-()]", "", raw)
    if not _PHONE.fullmatch(phone):
        raise PasswordRule(
            "phone", "a phone number is 5 to 20 digits, optionally starting with '+'"
        )
    return phone


def check_password(password: str, phone: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise PasswordRule("password", f"a password has at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise PasswordRule("password", f"a password has at most {MAX_PASSWORD_CHARS} characters")
    if phone.lstrip("+") in password or len(set(password)) < 4:
        raise PasswordRule(
            "password", "choose a password that is not the phone number or one repeated character"
        )


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (None: no login; checked against a dummy hash)."""
    if len(password) > MAX_PASSWORD_CHARS:
        return False
    try:
        return _HASHER.verify(stored or _dummy(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` was made with weaker parameters than today's."""
    try:
        return _HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return True
