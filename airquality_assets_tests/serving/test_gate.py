"""The ASGI gate and the path bounding, driven directly with ASGI messages (no server)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from airquality_assets.serving.gate import (
    UNMATCHED_PATH,
    VALIDATED_KEY,
    BoundedPaths,
    GatePolicy,
    RequestGate,
)
from airquality_assets.serving.request import RequestError, RequestSpec, ValidatedRequest
from airquality_assets.transforms.features import default_feature_names

from .conftest import LOOKBACK, TARGETS, make_body

SPEC = RequestSpec.for_features(default_feature_names(list(TARGETS)), LOOKBACK)
VALID = json.dumps(make_body(("beijing",))).encode()


class Downstream:
    """The app behind the gate: records what reached it and answers 200."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, _receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def run(
    gate: Any,
    *,
    path: str = "/predict",
    method: str = "POST",
    headers: dict[str, str] | None = None,
    chunks: list[bytes] | None = None,
    stall: bool = False,
) -> tuple[int, dict[str, str], bytes, int]:
    """(status, headers, body, receive calls) for one request through ``gate``."""
    headers = {"content-type": "application/json", **(headers or {})}
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }
    pending = list(chunks if chunks is not None else [VALID])
    sent: list[dict[str, Any]] = []
    calls = 0

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if pending:
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending) or stall}
        await asyncio.sleep(3600)  # a client that stopped sending
        return {}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(gate(scope, receive, send))
    start = sent[0]
    return (
        start["status"],
        {k.decode(): v.decode() for k, v in start["headers"]},
        b"".join(m.get("body", b"") for m in sent[1:]),
        calls,
    )


def make_gate(**policy: Any) -> tuple[RequestGate, Downstream, list[RequestError]]:
    refused: list[RequestError] = []
    downstream = Downstream()
    settings = {"spec": SPEC, "body_timeout_s": 0.2, "on_refused": refused.append, **policy}
    return RequestGate(downstream, lambda: GatePolicy(**settings)), downstream, refused


def test_valid_request_reaches_the_api_validated() -> None:
    gate, downstream, refused = make_gate()
    assert run(gate, chunks=[VALID[:100], VALID[100:]])[0] == 200
    assert isinstance(downstream.scopes[0][VALIDATED_KEY], ValidatedRequest)
    assert not refused


def test_large_bodies_are_validated_in_another_process() -> None:
    gate, downstream, _ = make_gate(inline_bytes=1_000)
    try:
        assert run(gate)[0] == 200
        status, _, body, _ = run(gate, chunks=[VALID.replace(b'"temp"', b'"tmp"')])
        assert status == 422 and json.loads(body)["details"][0]["code"] == "unknown_field"
    finally:
        gate.close()
    assert downstream.scopes[0][VALIDATED_KEY].locations == ["beijing"]


def test_stalled_or_short_body_is_a_408_that_closes_the_connection() -> None:
    gate, downstream, refused = make_gate()
    status, headers, body, _ = run(
        gate, headers={"content-length": str(len(VALID))}, chunks=[VALID[:50]], stall=True
    )
    assert status == 408 and headers["connection"] == "close"
    assert json.loads(body)["details"][0]["code"] == "body_timeout"
    assert not downstream.scopes and refused[0].status == 408


def test_body_limit_is_checked_before_reading() -> None:
    gate, downstream, _ = make_gate(max_body_bytes=5_000)
    status, headers, _, calls = run(gate, headers={"content-length": "10000000"})
    assert (status, headers["connection"], calls) == (413, "close", 0)
    status, _, _, _ = run(gate, chunks=[b" " * 3_000, b" " * 3_000])  # chunked, no length
    assert status == 413
    assert run(gate, headers={"content-length": "12x"})[0] == 400
    assert not downstream.scopes


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"content-type": "text/plain"}, 415),
        ({"content-type": "application/json\x00\xff"}, 415),
        ({}, 200),
    ],
)
def test_media_type(headers: dict[str, str], status: int) -> None:
    gate, _, _ = make_gate()
    got, _, body, _ = run(gate, headers=headers)
    assert got == status
    if status == 415:
        assert json.loads(body)["details"][0]["field"] == "Content-Type"


def test_auth() -> None:
    gate, _, refused = make_gate(token="s3cret")
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret"}):
        status, response_headers, body, calls = run(gate, headers=headers)
        assert status == 401 and calls == 0
        assert response_headers["www-authenticate"].startswith("Bearer")
        assert json.loads(body)["details"][0]["field"] == "Authorization"
        assert b"s3cret" not in body
    assert run(gate, path="/metadata", method="GET")[0] == 401
    assert run(gate, headers={"authorization": "Bearer s3cret"})[0] == 200
    assert run(gate, path="/metrics", method="GET")[0] == 200  # not the gate's business
    assert [e.status for e in refused] == [401] * 4


def test_unknown_paths_share_one_label() -> None:
    seen: list[str] = []

    async def app(scope: Any, _receive: Any, _send: Any) -> None:
        seen.append(scope["path"])

    bounded = BoundedPaths(app, {"/predict", "/metrics"}, prefixes=("/static/",))
    for path in ("/predict", "/metrics", "/static/x.js", "/a", "/b/c", "/predict/"):
        asyncio.run(bounded({"type": "http", "path": path}, None, None))
    assert seen == ["/predict", "/metrics", "/static/x.js", *[UNMATCHED_PATH] * 3]
