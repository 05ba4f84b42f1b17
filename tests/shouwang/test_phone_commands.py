"""``shouwang phone`` on the test database: a new key, a firm's SMS account stored with its
secret encrypted (never printed), and an account that cannot send refused with what to fix."""

from __future__ import annotations

import subprocess

from cryptography.fernet import Fernet

from core.db import Conn
from core.settings import Settings
from notify import phone_accounts
from tests.conftest import settings_env, shouwang

SECRET = "cli-SECRET-never-printed-42"


def run(s: Settings, key: str, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = settings_env(s) | {"SHOUWANG_NOTIFY_PHONE_KEY": key}
    return subprocess.run(
        shouwang("phone", *args),
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_account_is_stored_encrypted_and_its_secret_never_printed(
    settings: Settings, db: Conn
) -> None:
    made = run(settings, "", "", "key")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    Fernet(key.encode())  # a usable key
    (firm,) = db.execute("SELECT id FROM firms ORDER BY id LIMIT 1").fetchone() or (0,)
    db.execute("DELETE FROM phone_accounts WHERE firm_id = %s", (firm,))
    args = ("account", str(firm), "--kind", "sms", "--provider", "aliyun", "--access-key-id")
    ok = run(
        settings, key, SECRET + "\n", *args, "LTAI-cli", "--template-code", "SMS_1",
        "--sign-name", "守望", "--secret-stdin",
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert SECRET not in ok.stdout + ok.stderr
    a = phone_accounts.load(db, int(firm), "sms", key)
    assert a is not None and a.access_key_secret == SECRET and a.access_key_id == "LTAI-cli"
    (stored,) = db.execute(
        "SELECT access_key_secret FROM phone_accounts WHERE firm_id = %s", (firm,)
    ).fetchone() or ("",)
    assert SECRET not in stored
    no_sign = run(
        settings, key, SECRET + "\n", *args, "LTAI-cli", "--template-code", "SMS_1",
        "--secret-stdin",
    )  # fmt: skip
    assert no_sign.returncode != 0 and "sign name" in no_sign.stdout + no_sign.stderr
    no_key = run(
        settings, "", SECRET + "\n", *args, "LTAI-cli", "--template-code", "SMS_1",
        "--sign-name", "守望", "--secret-stdin",
    )  # fmt: skip
    assert no_key.returncode != 0 and "SHOUWANG_NOTIFY_PHONE_KEY" in no_key.stdout + no_key.stderr
    assert SECRET not in no_key.stdout + no_key.stderr
