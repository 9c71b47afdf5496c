"""Tests for the live API clients, run against a real HTTP server on 127.0.0.1.

Shared helpers live here (not in a conftest) so each test module states its own fixtures.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pytest_httpserver import HTTPServer

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures"


def fixture_bytes(name: str) -> bytes:
    """A recorded-format body exactly as stored (the clients must return it unchanged)."""
    return (FIXTURES_DIR / name).read_bytes()


@contextmanager
def local_server() -> Iterator[HTTPServer]:
    """A threaded server, so a deliberately slow handler cannot block the client's retry.

    Modules share one server per module (stopping one costs about 0.5 s); tests with slow
    handlers get their own, so a handler still sleeping after its test ended cannot log a
    request into the next test's count.
    """
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        if server.is_running():
            server.stop()


def closed_port() -> int:
    """A local port with nothing listening (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
