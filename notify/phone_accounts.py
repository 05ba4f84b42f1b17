"""Notify: each firm's SMS and voice provider account (``phone_accounts``), with its access key
secret encrypted at rest by a Fernet key from the settings (``SHOUWANG_NOTIFY_PHONE_KEY``).

The database holds only the Fernet token: a dump, a replica or a role that may read the table
learns nothing that sends a message. The secret is decrypted in the dispatcher when an account
is loaded and lives in memory only; ``Account`` never shows it (``repr``), and nothing here
logs it. A token that the key cannot open (the key was changed) is an error that says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from cryptography.fernet import Fernet, InvalidToken

from core.db import Conn
from core.errors import ConfigError

Provider = Literal["aliyun", "tencent"]
PhoneKind = Literal["sms", "voice"]
PROVIDERS: dict[str, frozenset[str]] = {
    "aliyun": frozenset({"sms", "voice"}),
    "tencent": frozenset({"sms"}),
}


class AccountError(ValueError):
    """An account that cannot be used or stored as given (the text says what to fix)."""


@dataclass(frozen=True, slots=True)
class Account:
    """One firm's provider account for one kind of channel, its secret in clear (memory only)."""

    firm_id: int
    kind: str  # sms | voice
    provider: str  # aliyun | tencent
    access_key_id: str
    access_key_secret: str = field(repr=False)
    sign_name: str = ""
    template_code: str = ""
    app_id: str = ""  # Tencent's SmsSdkAppId
    region: str = "ap-guangzhou"


def new_key() -> str:
    """A fresh key for ``SHOUWANG_NOTIFY_PHONE_KEY``."""
    return Fernet.generate_key().decode("ascii")


def cipher(key: str) -> Fernet:
    """The Fernet of ``key`` (``ConfigError`` when it is not one)."""
    if not key:
        raise ConfigError(
            "SHOUWANG_NOTIFY_PHONE_KEY",
            "not set: SMS and voice accounts cannot be stored or read (make a key with"
            " `shouwang phone key`)",
        )
    try:
        return Fernet(key.encode("ascii"))
    except (ValueError, UnicodeError):
        raise ConfigError(
            "SHOUWANG_NOTIFY_PHONE_KEY",
            "not a Fernet key (32 url-safe base64-encoded bytes): make one with"
            " `shouwang phone key`",
        ) from None


def check(a: Account) -> None:
    """``AccountError`` unless the account can send (pure)."""
    kinds = PROVIDERS.get(a.provider)
    if kinds is None:
        raise AccountError(f"provider {a.provider!r}: give aliyun or tencent")
    if a.kind not in kinds:
        raise AccountError(
            f"{a.provider} has no {a.kind} channel here: give one of {sorted(kinds)}"
        )
    for name, value, most in (
        ("access key id", a.access_key_id, 128),
        ("access key secret", a.access_key_secret, 256),
        ("template code", a.template_code, 64),
    ):
        if not value or len(value) > most or not value.isprintable():
            raise AccountError(f"{name}: give 1 to {most} printable characters")
    if a.kind == "sms" and not a.sign_name:
        raise AccountError("an SMS account needs its approved sign name (签名)")
    if len(a.sign_name) > 64 or len(a.app_id) > 64 or len(a.region) > 32:
        raise AccountError("sign name and app id are at most 64 characters, region 32")
    if a.provider == "tencent" and not a.app_id.isdigit():
        raise AccountError("a Tencent Cloud SMS account needs its SmsSdkAppId (digits)")


def save(conn: Conn, a: Account, key: str) -> None:
    """Store (or replace) the firm's account for its kind, the secret encrypted with ``key``."""
    check(a)
    token = cipher(key).encrypt(a.access_key_secret.encode()).decode("ascii")
    conn.execute(
        "INSERT INTO phone_accounts (firm_id, kind, provider, access_key_id, access_key_secret,"
        " sign_name, template_code, app_id, region) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (firm_id, kind) DO UPDATE SET provider = excluded.provider,"
        " access_key_id = excluded.access_key_id, access_key_secret = excluded.access_key_secret,"
        " sign_name = excluded.sign_name, template_code = excluded.template_code,"
        " app_id = excluded.app_id, region = excluded.region, updated_at = clock_timestamp()",
        (
            a.firm_id,
            a.kind,
            a.provider,
            a.access_key_id,
            token,
            a.sign_name,
            a.template_code,
            a.app_id,
            a.region,
        ),
    )


def load(conn: Conn, firm_id: int, kind: str, key: str) -> Account | None:
    """The firm's account for ``kind`` with its secret decrypted; None when it has none.
    ``ConfigError`` when the key is missing or cannot open the stored secret."""
    row = conn.execute(
        "SELECT provider, access_key_id, access_key_secret, sign_name, template_code, app_id,"
        " region FROM phone_accounts WHERE firm_id = %s AND kind = %s",
        (firm_id, kind),
    ).fetchone()
    if row is None:
        return None
    provider, key_id, token, sign, template, app_id, region = row
    try:
        secret = cipher(key).decrypt(str(token).encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise ConfigError(
            f"firm {firm_id}'s {kind} account",
            "SHOUWANG_NOTIFY_PHONE_KEY cannot decrypt its access key secret (was the key"
            " changed?): store the account again",
        ) from None
    return Account(
        firm_id,
        kind,
        str(provider),
        str(key_id),
        secret,
        str(sign),
        str(template),
        str(app_id),
        str(region),
    )
