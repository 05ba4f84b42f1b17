"""A TCP proxy on loopback that a drill or a test can cut and restore, to take a real service
away from a stage mid-run (as psycopg's own tests do with theirs). Cutting closes every open
connection and refuses new ones until restored."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from psycopg.conninfo import conninfo_to_dict, make_conninfo


class Proxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open = threading.Event()
        self._open.set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self.cuts = 0  # connections closed by cut() or refused while cut
        self._thread = threading.Thread(target=self._accept, name="proxy", daemon=True)
        self._thread.start()

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    def cut(self) -> None:
        """Drop every connection and refuse new ones (the service is unreachable)."""
        self._open.clear()
        with self._lock:
            conns, self._conns = self._conns, set()
            self.cuts += len(conns) // 2
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def restore(self) -> None:
        self._open.set()

    def url(self, database_url: str) -> str:
        """``database_url`` by way of this proxy."""
        params = conninfo_to_dict(database_url)
        return make_conninfo(**{**params, "host": "127.0.0.1", "port": str(self.port)})  # type: ignore[arg-type]

    def close(self) -> None:
        self._stop.set()
        self.cut()
        self._listener.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._open.is_set():
                with self._lock:
                    self.cuts += 1
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if not self._open.is_set():  # cut while connecting
                    client.close()
                    upstream.close()
                    continue
                self._conns |= {client, upstream}
            port = int(client.getpeername()[1])
            for a, b, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pipe, args=(a, b, up, port), daemon=True).start()

    def passes(self, data: bytes, *, upstream: bool, client_port: int) -> bool:
        """Whether to forward this chunk (``upstream``: client to service); a test's proxy may
        drop some (the base forwards everything)."""
        return True

    def _pipe(self, src: socket.socket, dst: socket.socket, up: bool, port: int) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if self.passes(data, upstream=up, client_port=port):
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            with self._lock:
                gone = {src, dst} & self._conns
                self._conns -= gone
            for s in gone:
                s.close()


@contextmanager
def proxied(host: str, port: int) -> Iterator[Proxy]:
    p = Proxy(host, port)
    try:
        yield p
    finally:
        p.close()
