"""Limits on a request's head (request line and headers) that uvicorn does not set.

BentoML 1.4 runs uvicorn with its httptools protocol and passes no option for either: a
4 MB header was accepted, and a client sending its headers a byte at a time held a
connection forever (uvicorn's keep-alive timer only runs between requests), so a few
hundred such clients exhaust the server. :class:`LimitedHttpToolsProtocol` adds both:

* a head larger than ``max_head_bytes`` gets ``431`` and the connection is closed, counted
  on the raw bytes while the head is incomplete, so a large one is refused as it arrives;
* a head not complete within ``head_timeout_s`` of the connection (or of the request's first
  byte, on a kept-alive one) gets ``408`` and the connection is closed.

:func:`install` makes it uvicorn's ``auto`` protocol; the service calls it at import, in
each worker, before BentoML builds uvicorn's config. Bodies have their own limits in
:mod:`airquality_assets.serving.gate`.
"""

from __future__ import annotations

import asyncio
import json

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from airquality_assets.serving.request import RequestError

PROTOCOL = "airquality_assets.serving.http_limits:LimitedHttpToolsProtocol"


class _HeadTooLarge(Exception):
    pass


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head size cap and a head-read deadline."""

    max_head_bytes = 16_384
    head_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._start_head()

    def _start_head(self) -> None:
        self._reading_head = True
        self._head_bytes = 0
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_late)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self._reading_head and not self.transport.is_closing():
            reason = f"request line and headers not complete within {self.head_timeout_s:g} s"
            self._refuse(408, reason, "header_timeout")

    def _too_large(self) -> None:
        reason = f"request line and headers larger than {self.max_head_bytes} bytes"
        self._refuse(431, reason, "headers_too_large")

    def _refuse(self, status: int, reason: str, code: str) -> None:
        """The service's error body (``ErrorBody``), then close: the head is unread."""
        self._stop_head_timer()
        self._reading_head = False
        error = RequestError.one(status, "headers", reason, code)
        body = json.dumps(error.to_body()).encode("ascii")
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(head))
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self._reading_head:
            self._head_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):  # httptools chains the callback's
                self._too_large()
                return
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        if self._reading_head and self._head_bytes > self.max_head_bytes:
            self._too_large()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._reading_head:  # the next request on a kept-alive connection
            self._start_head()

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > self.max_head_bytes:  # the whole head arrived in one read
            raise _HeadTooLarge
        self._reading_head = False
        self._stop_head_timer()
        super().on_headers_complete()


def install(max_head_bytes: int, head_timeout_s: float) -> None:
    """Make :class:`LimitedHttpToolsProtocol` uvicorn's ``auto`` HTTP protocol."""
    from uvicorn import config

    LimitedHttpToolsProtocol.max_head_bytes = max_head_bytes
    LimitedHttpToolsProtocol.head_timeout_s = head_timeout_s
    config.HTTP_PROTOCOLS["auto"] = PROTOCOL
