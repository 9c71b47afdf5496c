"""Request heads are bounded in size and in time, on a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from airquality_assets.serving import http_limits
from airquality_assets.serving.http_limits import LimitedHttpToolsProtocol

MAX_HEAD = 4_096
HEAD_TIMEOUT_S = 0.5


async def app(scope, receive, send) -> None:  # noqa: ARG001 (a bare ASGI app)
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


class Limited(LimitedHttpToolsProtocol):
    max_head_bytes = MAX_HEAD
    head_timeout_s = HEAD_TIMEOUT_S


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=free, http=Limited, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield free
    server.should_exit = True
    thread.join(10)


def _exchange(port: int, *parts: bytes, pause: float = 0.0) -> bytes:
    """Send the parts (pausing between them), then read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        for part in parts:
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(pause)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        return b"".join(chunks)


def _error(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    return int(head.split()[1]), json.loads(body)


def test_a_normal_request_is_answered(port: int) -> None:
    request = (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 2000 + b"\r\nConnection: close\r\n\r\n"
    )
    answer = _exchange(port, request)
    assert answer.startswith(b"HTTP/1.1 200") and b"ok" in answer


def test_a_header_over_the_limit_in_one_read_gets_431(port: int) -> None:
    request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (MAX_HEAD + 10) + b"\r\n\r\n"
    status, body = _error(_exchange(port, request))
    assert status == 431
    assert body["details"][0] == {
        "field": "headers",
        "reason": f"request line and headers larger than {MAX_HEAD} bytes",
        "code": "headers_too_large",
    }


def test_a_huge_header_is_refused_as_it_arrives(port: int) -> None:
    start = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: "
    # 4 MB never completes: the server answers once the limit is passed and closes
    status, _ = _error(_exchange(port, start, *[b"a" * 65536] * 64))
    assert status == 431


def test_a_head_sent_a_byte_at_a_time_is_cut_off_with_408(port: int) -> None:
    trickle = [bytes([c]) for c in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: abcdefghijklmnop"]
    status, body = _error(_exchange(port, *trickle, pause=0.1))
    assert status == 408 and body["details"][0]["code"] == "header_timeout"


def test_a_connection_that_sends_nothing_is_closed(port: int) -> None:
    status, _ = _error(_exchange(port))
    assert status == 408


def test_a_kept_alive_connection_gets_the_deadline_again(port: int) -> None:
    first = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = _exchange(port, first, b"GET / HTTP/1.1\r\nHo", pause=0.1)
    assert answer.startswith(b"HTTP/1.1 200")
    assert b"HTTP/1.1 408" in answer  # the second, stalled head


def test_install_makes_it_uvicorns_auto_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    from uvicorn import config

    monkeypatch.setitem(config.HTTP_PROTOCOLS, "auto", config.HTTP_PROTOCOLS["auto"])
    monkeypatch.setattr(LimitedHttpToolsProtocol, "max_head_bytes", 1)
    monkeypatch.setattr(LimitedHttpToolsProtocol, "head_timeout_s", 1.0)
    http_limits.install(8_192, 3.0)
    loaded = uvicorn.Config(app, http="auto")
    loaded.load()
    assert loaded.http_protocol_class is LimitedHttpToolsProtocol
    assert (LimitedHttpToolsProtocol.max_head_bytes, LimitedHttpToolsProtocol.head_timeout_s) == (
        8_192,
        3.0,
    )
