"""The main job keeps its processes running: one that dies is started again after a backoff and
reported, the others are left alone, and stopping ends them all."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from shouwang.supervisor import Supervisor


def python(*args: str, **popen: Any) -> subprocess.Popen[bytes]:
    """Stand-in processes: small Python programs (the supervisor runs any argv it is given)."""
    return subprocess.Popen([sys.executable, "-c", *args], **popen)


def test_a_process_that_dies_is_restarted_with_backoff_and_the_rest_keep_running(
    tmp_path: Path,
) -> None:
    starts = tmp_path / "starts"
    crashy = f"open({str(starts)!r}, 'a').write('x'); raise SystemExit(3)"
    steady = "import time; time.sleep(60)"
    sup = Supervisor(
        {"crashy": [crashy], "steady": [steady]}, launch=python, backoff_s=0.2, backoff_cap_s=0.8
    )
    sup.start()
    steady_pid = sup.processes["steady"].proc.pid  # type: ignore[union-attr]
    said: list[str] = []
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        said += sup.poll()
        time.sleep(0.05)
    try:
        crashed = sup.processes["crashy"]
        assert crashed.restarts >= 3, said
        assert crashed.last_exit == 3
        assert any("crashy exited with status 3" in s for s in said)
        assert any("restarting in 1 s" in s or "restarting in 0 s" in s for s in said)
        waits = [s.split("restarting in ")[1] for s in said if "restarting in" in s]
        assert waits[-1] == "1 s", "the backoff grows to its cap"  # 0.8 s shown rounded
        assert starts.read_text().count("x") == crashed.restarts + 1, (
            "started once, then each restart"
        )
        assert sup.processes["steady"].proc.pid == steady_pid  # type: ignore[union-attr]
        assert "crashy" in sup.summary() and "steady" not in sup.summary()
    finally:
        sup.stop(timeout_s=5)
    assert all(p.proc is None or p.proc.poll() is not None for p in sup.processes.values())
