"""The TCP proxy tests cut and restore to take a service away from a stage mid-run; it lives
with the drills (``bench.drills.proxy``), which use the same one."""

from __future__ import annotations

from bench.drills.proxy import Proxy, proxied

__all__ = ["Proxy", "proxied"]
