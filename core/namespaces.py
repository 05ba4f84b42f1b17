"""Shared: the broker's account namespaces (pure).

One broker, four kinds of account, one username space: a device's or gateway's username is its
uid, a person's duty app is ``duty-<person id>``, the platform's services are ``svc-…``. The
prefixes keep them apart: a device or gateway uid may not start with a reserved prefix, and a
service account's username must start with ``svc-``. Otherwise a firm admin could register a
device named ``duty-17`` and, by issuing its credential, take over another firm's duty person's
account, or name one ``svc-admin`` and break the broker's accounts.
"""

from __future__ import annotations

import re
from typing import Final

SERVICE_PREFIX: Final = "svc-"
PERSON_PREFIX: Final = "duty-"
RESERVED_PREFIXES: Final = (SERVICE_PREFIX, PERSON_PREFIX)
UID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Device, gateway and registry codes: letters, digits, ``_ . -``, at most 64 characters, and a
letter or digit first. Nothing MQTT treats specially (``/ + # $``), nothing Mosquitto's password
file does (``:``, white space)."""
_UID = re.compile(UID_PATTERN)
_USERNAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def uid_problem(uid: str) -> str | None:
    """What is wrong with ``uid`` as a device's or gateway's uid (its broker username), or None."""
    if not _UID.fullmatch(uid):
        return (
            f"{uid[:80]!r} is not a valid uid: use letters, digits, '_', '.' and '-', at most 64"
            " characters, starting with a letter or digit"
        )
    for prefix in RESERVED_PREFIXES:
        if uid.lower().startswith(prefix):
            return (
                f"uids starting with {prefix!r} are reserved for the platform's own broker"
                f" accounts ({'services' if prefix == SERVICE_PREFIX else 'duty apps'});"
                " choose another uid"
            )
    return None


def service_username_problem(username: str) -> str | None:
    """What is wrong with ``username`` for one of the platform's service accounts, or None."""
    if not username.startswith(SERVICE_PREFIX) or not _USERNAME.fullmatch(username):
        return (
            f"{username[:80]!r}: a service account's username must start with {SERVICE_PREFIX!r}"
            " and use only letters, digits, '_', '.' and '-' (so that no device can take it)"
        )
    return None


def account_problem(username: str, kind: str) -> str | None:
    """What is wrong with a registry account row (``mqtt_accounts``) of ``kind``, or None."""
    if kind in ("device", "gateway"):
        return uid_problem(username)
    if kind == "person":
        rest = username.removeprefix(PERSON_PREFIX)
        if rest == username or not rest.isdigit():
            return f"{username[:80]!r}: a duty app's username is {PERSON_PREFIX}<person id>"
        return None
    return f"{username[:80]!r}: unknown account kind {kind[:40]!r}"
