from __future__ import annotations

import subprocess
from pathlib import Path

from broker.acl import Account, render_acl
from broker.credentials import hash_password, verify_password


def test_hash_is_mosquittos_format_and_verifies() -> None:
    h = hash_password("s3cret")
    assert h.startswith("$7$101$")
    assert verify_password("s3cret", h)
    assert not verify_password("s3cret!", h)
    assert hash_password("s3cret") != h, "each hash has its own salt"


def test_mosquitto_passwd_hashes_verify_with_ours(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(f), "dev", "pa55"], check=True)
    hashed = f.read_text().strip().split(":", 1)[1]
    assert verify_password("pa55", hashed)


def test_acl_confines_each_kind() -> None:
    text = render_acl(
        [
            Account("EL-1", "device", "x"),
            Account("GW-1", "gateway", "x"),
            Account("svc-ingest", "ingest", "x"),
        ],
        "ingest",
    )
    assert "user EL-1\ntopic write sw/v1/d/EL-1/telemetry\n" in text
    assert "topic write sw/v1/g/GW-1/batch" in text
    assert "topic read $share/ingest/sw/v1/#" in text
    assert "#" not in text.split("user EL-1")[1].split("user")[0].replace("cmd/#", "")
