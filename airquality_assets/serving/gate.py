"""ASGI layers in front of the BentoML API methods: what a hostile client can cost is bounded.

:class:`RequestGate` (a BentoML service middleware) owns the envelope of ``/predict`` and
``/metadata``, and the auth of ``GET /forecast`` and its page: bearer auth, media type,
the body size limit (checked on ``Content-Length`` before a byte is read, and again while
reading), a deadline for the body (a stalled or short body is answered 408 and the
connection closed, never a 504), then parsing and validation.
Small bodies are validated inline (a one-location body takes well under a millisecond);
larger ones in separate processes, so a client sending megabytes of junk burns another
core rather than the event loop every other client needs: one process for batch-sized
bodies and one (at a lower CPU priority) for larger ones
(:mod:`airquality_assets.serving.lanes`), where they take turns by size per connection
(:mod:`airquality_assets.serving.fairness`), so junk cannot make a batch client wait
behind it. A valid request reaches the API
method already parsed (``VALIDATED_KEY`` in the ASGI scope); every refusal gets the one
error body of :mod:`airquality_assets.serving.request`.

:class:`BoundedPaths` wraps the whole app, outside BentoML's request metrics (which label
by raw path): a path no route serves is rewritten to :data:`UNMATCHED_PATH`, so unknown
paths share one label instead of each creating series.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
from collections.abc import Awaitable, Callable, Hashable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from airquality_assets.serving.lanes import SizeLanes
from airquality_assets.serving.request import (
    RequestError,
    RequestSpec,
    ValidatedRequest,
    parse_request,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

VALIDATED_KEY = "airquality.validated"
UNMATCHED_PATH = "/_unmatched"
PREDICT_PATH = "/predict"
METADATA_PATH = "/metadata"
FORECAST_PATH = "/forecast"
FORECAST_PAGE_PATH = "/forecast/page"
PROTECTED_PATHS = (PREDICT_PATH, METADATA_PATH, FORECAST_PATH, FORECAST_PAGE_PATH)
#: Bodies up to this size (about 20 locations) have a validation lane of their own.
BATCH_PARSE_BYTES = 131_072


class Parser:
    """Runs :func:`parse_request` inline up to ``inline_bytes``, else in the lane of its size
    (:class:`~airquality_assets.serving.lanes.SizeLanes`: up to ``batch_bytes``, or bulk).

    The processes start in :meth:`warm_up` (the service's start-up; not at import, which
    ``bentoml serve`` also does in its parent) or on first use, and are replaced if they die.
    """

    def __init__(
        self, spec: RequestSpec, inline_bytes: int, batch_bytes: int = BATCH_PARSE_BYTES
    ) -> None:
        self.spec = spec
        self.inline_bytes = inline_bytes
        self.lanes = SizeLanes(max(batch_bytes, inline_bytes))

    def warm_up(self) -> None:
        """Start the processes and wait until they have imported everything (a few seconds)."""
        self.lanes.warm_up(parse_request, b"{}", self.spec)

    async def parse(self, body: bytes, flow: Hashable = None) -> ValidatedRequest:
        """Validate ``body``; a large one waits its fair turn among ``flow``s (the client
        connection) in the lane of its size (:mod:`airquality_assets.serving.fairness`)."""
        if len(body) <= self.inline_bytes:
            return parse_request(body, self.spec)
        lane = self.lanes.lane_for(len(body), flow)
        try:
            validated = await lane.run(flow, len(body), parse_request, body, self.spec)
        except RequestError:
            self.lanes.judged(flow, valid=False)  # its next bodies: the bulk lane
            raise
        self.lanes.judged(flow, valid=True)
        return validated

    def close(self) -> None:
        self.lanes.close()


@dataclass
class GatePolicy:
    """What the gate enforces; built from :class:`ServiceConfig` at start-up."""

    spec: RequestSpec
    token: str | None = None
    max_body_bytes: int = 1_000_000
    body_timeout_s: float = 10.0
    inline_bytes: int = 16_384
    batch_bytes: int = BATCH_PARSE_BYTES
    parser: Parser | None = None  # started by the service; else created on first request
    on_refused: Callable[[RequestError], None] = field(default=lambda _error: None)


def error_response_parts(error: RequestError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and ASCII-only JSON body of a refusal (no lone surrogate can break it)."""
    body = json.dumps(error.to_body(), ensure_ascii=True).encode("ascii")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if error.status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="airquality"'))
    if error.status in (408, 413):  # the rest of the body is not read: do not reuse the socket
        headers.append((b"connection", b"close"))
    return error.status, headers, body


async def send_error(send: Send, error: RequestError) -> None:
    status, headers, body = error_response_parts(error)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value
    return None


def _flow(scope: Scope) -> Hashable:
    """The client connection (address and port): the unit validation is shared between."""
    client = scope.get("client")
    return tuple(client) if client else None


class _ClientGone(Exception):
    """The client disconnected while sending its body: nobody to answer."""


class RequestGate:
    """BentoML service middleware: auth, body limits and deadline, validation, error bodies."""

    def __init__(self, app: ASGIApp, policy: Callable[[], GatePolicy]) -> None:
        self.app = app
        self._policy_factory = policy
        self._policy: GatePolicy | None = None
        self._parser: Parser | None = None

    @property
    def policy(self) -> GatePolicy:
        if self._policy is None:
            self._policy = self._policy_factory()
            self._parser = self._policy.parser or Parser(
                self._policy.spec, self._policy.inline_bytes, self._policy.batch_bytes
            )
        return self._policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path not in PROTECTED_PATHS:
            await self.app(scope, receive, send)
            return
        policy = self.policy
        try:
            self._authorize(scope, policy)
            if path == PREDICT_PATH and scope["method"] == "POST":
                body = await self._read_body(scope, receive, policy)
                assert self._parser is not None
                scope[VALIDATED_KEY] = await self._parser.parse(body, _flow(scope))
            elif scope["method"] == "POST":
                self._declared_length(scope, policy)  # the body is never read: only capped
        except _ClientGone:
            return
        except RequestError as error:
            policy.on_refused(error)
            await send_error(send, error)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _authorize(scope: Scope, policy: GatePolicy) -> None:
        if policy.token is None:
            return
        scheme, _, given = (_header(scope, b"authorization") or b"").partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(
            given.strip(), policy.token.encode()
        ):
            return
        raise RequestError.one(
            401, "Authorization", "missing or wrong bearer token", "unauthorized"
        )

    @staticmethod
    def _declared_length(scope: Scope, policy: GatePolicy) -> int | None:
        declared = _header(scope, b"content-length")
        if declared is None:
            return None
        if not declared.isdigit() or len(declared) > 18:
            raise RequestError.one(400, "Content-Length", "not a number", "bad_header")
        if int(declared) > policy.max_body_bytes:
            raise RequestError.one(
                413,
                "body",
                f"{int(declared)} bytes exceeds the {policy.max_body_bytes} byte limit",
                "too_large",
            )
        return int(declared)

    async def _read_body(self, scope: Scope, receive: Receive, policy: GatePolicy) -> bytes:
        media = (_header(scope, b"content-type") or b"").split(b";")[0].strip().lower()
        if media != b"application/json":
            shown = json.dumps(media.decode("latin-1")[:60]) if media else "nothing"
            raise RequestError.one(
                415,
                "Content-Type",
                f"must be application/json, got {shown}",
                "unsupported_media_type",
            )
        self._declared_length(scope, policy)
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(policy.body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _ClientGone
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > policy.max_body_bytes:
                        raise RequestError.one(
                            413,
                            "body",
                            f"more than the {policy.max_body_bytes} byte limit",
                            "too_large",
                        )
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            raise RequestError.one(
                408,
                "body",
                f"body not received within {policy.body_timeout_s:g} s (stalled, or shorter "
                "than its Content-Length)",
                "body_timeout",
            ) from None
        return b"".join(chunks)

    def close(self) -> None:
        if self._parser is not None:
            self._parser.close()


class BoundedPaths:
    """Outermost ASGI wrapper: unknown paths become :data:`UNMATCHED_PATH` (then a 404)."""

    def __init__(self, app: ASGIApp, known: Iterable[str], prefixes: Iterable[str] = ()) -> None:
        self.app = app
        self.known = frozenset(known)
        self.prefixes = tuple(prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path = scope.get("path", "")
            if path not in self.known and not path.startswith(self.prefixes):
                scope = {**scope, "path": UNMATCHED_PATH, "raw_path": UNMATCHED_PATH.encode()}
        await self.app(scope, receive, send)


def static_paths(directory: str, mount_path: str) -> set[str]:
    """URL paths of the files under a static directory (each an exact known path)."""
    paths = set()
    for root, _, files in os.walk(directory):
        for name in files:
            relative = os.path.relpath(os.path.join(root, name), directory)
            paths.add(f"{mount_path.rstrip('/')}/{relative}")
    return paths
