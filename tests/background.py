"""A stage's loop run in a thread of the test process, its errors surfaced: a stage that died
inside a test fails that test, however the test itself ended."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def running(
    run: Callable[[], None], stop: Callable[[], None], name: str, join_s: float = 60.0
) -> Iterator[threading.Thread]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run()
        except BaseException as e:  # surfaced below
            errors.append(e)

    thread = threading.Thread(target=target, name=name)
    thread.start()
    try:
        yield thread
    finally:
        stop()
        thread.join(join_s)
    assert not errors, errors
    assert not thread.is_alive(), f"{name} did not stop within {join_s} s"
