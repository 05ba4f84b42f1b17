"""API: the shell. ``shouwang api`` builds the app from the settings and serves it with uvicorn."""

from __future__ import annotations

import logging
from typing import Any

import uvicorn
from fastapi import FastAPI

from api.app import create_app, tune_gc
from core.logs import configure
from core.metrics import Heartbeat, serve
from core.settings import Settings, load_settings

log = logging.getLogger("shouwang.api")


def metrics_endpoint(settings: Settings) -> Heartbeat:
    """This process's metrics endpoint (``core.metrics.serve``, once) and the stage's heartbeat.
    With several workers each is its own process: the first takes the port, each other one any
    free port, which it logs."""
    heartbeat, _port = serve(
        "api",
        settings.metrics_host,
        settings.metrics_port("api"),
        [settings.state_dir],
        any_port_if_taken=True,
    )
    return heartbeat


def factory() -> FastAPI:
    """The app for each uvicorn worker process, from the settings as the environment gives them."""
    tune_gc()
    settings = load_settings()
    configure("api", fmt=settings.log_format)  # a worker process logs as its parent does
    return create_app(settings, metrics_endpoint(settings))


def main(
    settings: Settings, *, host: str | None = None, port: int | None = None, workers: int = 1
) -> None:
    # uvloop and httptools (dependencies) are what uvicorn's "auto" picks when installed.
    common: dict[str, Any] = {
        "host": host or settings.api_host,
        "port": port or settings.api_port,
        "proxy_headers": True,
        "log_level": "info",
        "log_config": None,  # uvicorn's loggers go to ours (core.logs), not its own handlers
        "timeout_graceful_shutdown": 5,  # live streams never end by themselves
    }
    if workers > 1:  # each worker builds its own app (its own pools) from the environment
        uvicorn.run("api.__main__:factory", factory=True, workers=workers, **common)
        return
    app = create_app(settings, metrics_endpoint(settings))
    tune_gc()
    uvicorn.run(app, **common)


if __name__ == "__main__":  # python -m api: as `shouwang api` with its defaults
    settings = load_settings()
    configure("api", fmt=settings.log_format)
    main(settings)
