"""API: the shell. ``shouwang api`` builds the app from the settings and serves it with uvicorn."""

from __future__ import annotations

import uvicorn

from api.app import create_app, tune_gc
from core.settings import Settings


def main(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    app = create_app(settings)
    tune_gc()
    # uvloop and httptools (dependencies) are what uvicorn's "auto" picks when installed.
    uvicorn.run(
        app,
        host=host or settings.api_host,
        port=port or settings.api_port,
        proxy_headers=True,
        log_level="info",
        timeout_graceful_shutdown=5,  # live streams never end by themselves
    )
