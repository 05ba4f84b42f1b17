"""A wrong setting stops a command with one line per setting that names the variable and what
it must be, never a validation traceback."""

from __future__ import annotations

import os
import subprocess

from tests.conftest import shouwang


def test_a_setting_out_of_range_is_one_clear_line() -> None:
    env = {
        **os.environ,
        "SHOUWANG_AUDIT_RETENTION_DAYS": "30",
        "SHOUWANG_INGEST_REJECT_LIMIT_PER_MINUTE": "lots",
    }
    out = subprocess.run(
        shouwang("status"), env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 2, out.stderr
    text = " ".join((out.stdout + out.stderr).split())
    assert "Traceback" not in text
    assert "SHOUWANG_AUDIT_RETENTION_DAYS: Input should be greater than or equal to 180" in text
    assert "SHOUWANG_INGEST_REJECT_LIMIT_PER_MINUTE" in text and "'lots'" in text
