"""Closed-loop HTTP load generator: N keep-alive connections, one request in flight each.

Single process, asyncio over raw sockets with a pre-built HTTP/1.1 request, so the client
spends a few microseconds per request and does not starve the servers it measures (httpx
or requests cost ~10x more CPU per call). ``run.py`` pins it to one core with
``os.sched_setaffinity``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass


@dataclass
class LoadResult:
    clients: int
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    def summary(self) -> dict[str, float]:
        return {
            "clients": self.clients,
            "requests": self.requests,
            "errors": self.errors,
            "req_per_s": round(self.throughput, 1),
            "p50_ms": round(self.percentile(50), 2),
            "p99_ms": round(self.percentile(99), 2),
            "mean_ms": round(statistics.fmean(self.latencies_ms), 2),
        }


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: keep-alive",
        *[f"{k}: {v}" for k, v in headers.items()],
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, server keeps the connection open)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    chunked = False
    keep_alive = True
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            keep_alive = False
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(length)
    return status, keep_alive


async def _client(host: str, port: int, payload: bytes, count: int, out: list[float]) -> int:
    """One closed-loop client. Gunicorn's sync workers close every connection
    (``Connection: close``); then the next request reconnects and, fairly, pays for it."""
    errors = 0
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    try:
        for _ in range(count):
            started = time.perf_counter()
            if connection is None:
                connection = await asyncio.open_connection(host, port)
            reader, writer = connection
            writer.write(payload)
            status, keep_alive = await _read_response(reader)
            out.append((time.perf_counter() - started) * 1e3)
            errors += status != 200
            if not keep_alive:
                writer.close()
                connection = None
    finally:
        if connection is not None:
            connection[1].close()
    return errors


async def run_load(
    host: str,
    port: int,
    body: bytes,
    *,
    clients: int,
    requests_per_client: int,
    path: str = "/predict",
    headers: dict[str, str] | None = None,
) -> LoadResult:
    payload = build_request(host, port, path, body, headers or {})
    latencies: list[float] = []
    started = time.perf_counter()
    errors = await asyncio.gather(
        *[_client(host, port, payload, requests_per_client, latencies) for _ in range(clients)]
    )
    seconds = time.perf_counter() - started
    return LoadResult(clients, len(latencies), sum(errors), seconds, latencies)


async def _junk_client(
    host: str, port: int, payload: bytes, stop: asyncio.Event, statuses: list[int]
) -> None:
    """Sends ``payload`` back to back until ``stop``; reconnects when the server closes."""
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while not stop.is_set():
        try:
            if connection is None:
                connection = await asyncio.open_connection(host, port)
            reader, writer = connection
            writer.write(payload)
            await writer.drain()
            status, keep_alive = await _read_response(reader)
            statuses.append(status)
            if not keep_alive:
                writer.close()
                connection = None
        except (ConnectionError, asyncio.IncompleteReadError):
            statuses.append(0)
            connection = None
    if connection is not None:
        connection[1].close()


async def run_under_junk(
    host: str,
    port: int,
    body: bytes,
    junk: bytes,
    *,
    requests: int,
    junk_clients: int = 2,
) -> tuple[LoadResult, list[int]]:
    """One legitimate closed-loop client while ``junk_clients`` send ``junk`` non-stop.

    Returns the legitimate client's result and the junk requests' statuses.
    """
    stop = asyncio.Event()
    statuses: list[int] = []
    junk_payload = build_request(host, port, "/predict", junk, {})
    junkers = [
        asyncio.create_task(_junk_client(host, port, junk_payload, stop, statuses))
        for _ in range(junk_clients)
    ]
    await asyncio.sleep(0.5)  # let the junk reach the server first
    legit = await run_load(host, port, body, clients=1, requests_per_client=requests)
    stop.set()
    await asyncio.gather(*junkers)
    return legit, statuses
