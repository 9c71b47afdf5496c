"""BentoML service for the champion air-quality LSTM.

Serve (after the training job has imported a model into the BentoML store)::

    bentoml serve service:AirQualityForecast --working-dir bento --host 127.0.0.1 --port 3000

Why the HTTP endpoints are a Starlette app mounted with ``@bentoml.asgi_app`` rather than
``@bentoml.api`` methods: BentoML 1.4 parses an API's body with pydantic *before* our code
runs, answers a malformed body with its own error shape (or a generic 500), and renders a
4xx ``BentoMLException`` as a JSON list. Owning ``/predict`` lets validation run first and
answer every bad input with ``{"error", "details": [{"field", "reason", "code"}]}`` and the
right status (400/401/413/415/422). The mounted app still runs inside BentoML's server:
same workers, ``/livez``, ``/readyz`` (gated by ``__is_ready__``), ``/metrics`` and
BentoML's request metrics, tracing and access log middleware.

Settings (environment, read at start): ``AIRQUALITY_API_TOKEN`` (bearer token for
/predict and /metadata; unset = open), ``AIRQUALITY_WORKERS`` (default 1: on 2 shared
cores one worker plus micro-batching beat 2 workers on p99, whose keep-alive connections
spread unevenly; try 2 on a dedicated host),
``AIRQUALITY_MODEL_TAG`` (default ``airquality-lstm:latest``), ``AIRQUALITY_MAX_BODY_BYTES``
(default 1 MB), ``AIRQUALITY_MAX_LOCATIONS`` (default 64), ``AIRQUALITY_BATCHING`` (1 =
merge concurrent requests into one forward pass, default 1), ``AIRQUALITY_XLA_THREADS``
(XLA CPU threads per worker, default 1: workers x threads should not exceed the cores).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")  # before anything imports keras
_XLA_THREADS = os.environ.get("AIRQUALITY_XLA_THREADS", "1")
if _XLA_THREADS != "0" and "xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + " --xla_cpu_multi_thread_eigen=false"
        + f" intra_op_parallelism_threads={_XLA_THREADS}"
    ).strip()

import bentoml  # noqa: E402
import numpy as np  # noqa: E402
from bentoml.exceptions import NotFound  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from airquality_assets.serving.predictor import Predictor  # noqa: E402
from airquality_assets.serving.validation import (  # noqa: E402
    MAX_BODY_BYTES,
    MAX_LOCATIONS,
    ValidationError,
    parse_json,
    validate_request,
)

logger = logging.getLogger("bentoml.airquality")

MODEL_TAG = os.environ.get("AIRQUALITY_MODEL_TAG", "airquality-lstm:latest")
WORKERS = int(os.environ.get("AIRQUALITY_WORKERS", "1"))
MAX_BODY = int(os.environ.get("AIRQUALITY_MAX_BODY_BYTES", str(MAX_BODY_BYTES)))
LOCATION_CAP = int(os.environ.get("AIRQUALITY_MAX_LOCATIONS", str(MAX_LOCATIONS)))
BATCHING = os.environ.get("AIRQUALITY_BATCHING", "1") != "0"
NO_MODEL_MESSAGE = (
    "No '{tag}' model in the BentoML model store ({home}). Run the training job first: "
    "`bash scripts/demo.sh` (or materialize `champion_model` and `bento` in Dagster), which "
    "promotes a champion and imports it into this store."
)


def _stored_model() -> Any:
    """The model to serve, or a clear startup failure telling the operator what to run."""
    try:
        return bentoml.models.get(MODEL_TAG)
    except NotFound:
        home = os.environ.get("BENTOML_HOME", "~/bentoml")
        raise RuntimeError(NO_MODEL_MESSAGE.format(tag=MODEL_TAG, home=home)) from None


# Fail at import: `bentoml serve` imports this module before starting workers, so a missing
# model stops the server with the message above instead of workers crash-looping.
_stored_model()


class ServiceMetrics:
    """The project's Prometheus metrics, merged into BentoML's /metrics.

    Created in the worker (service ``__init__``), after BentoML has set
    ``PROMETHEUS_MULTIPROC_DIR``; ``prometheus_client`` is imported here, not at module
    import, for the same reason. (BentoML 1.4.39 deprecates ``bentoml.metrics``, which is
    now only a lazy alias of ``prometheus_client`` that emits a DeprecationWarning.)
    """

    def __init__(self, model_name: str, model_version: str) -> None:
        import prometheus_client as prom

        self.predictions = prom.Counter(
            "airquality_predictions",
            "Location forecasts served by /predict",
        )
        self.predicted = prom.Histogram(
            "airquality_predicted_concentration_ug_m3",
            "First-horizon forecast concentration per pollutant, ug/m3",
            ["pollutant"],
            buckets=(5, 10, 20, 25, 40, 50, 60, 75, 100, 150, 200, 300, 500, 1000, 5000),
        )
        self.validation_failures = prom.Counter(
            "airquality_validation_failures",
            "Rejected /predict requests by first problem's category",
            ["reason"],
        )
        self.model_info = prom.Gauge(
            "airquality_model_info",
            "Served model (value 1), name and MLflow version as labels",
            ["model_name", "model_version"],
            multiprocess_mode="max",
        )
        self.model_info.labels(model_name=model_name, model_version=model_version).set(1)

    def observe(self, pollutants: list[str], values: np.ndarray) -> None:
        """Count forecasts; histogram the first-horizon value per location and pollutant.

        Only the first horizon: observing every horizon (24 x pollutants) costs ~0.5 ms
        per request in multiprocess mode (one mmap write each), a sixth of the request.
        """
        self.predictions.inc(values.shape[0])
        first = values[:, 0, :]
        for j, pollutant in enumerate(pollutants):
            child = self.predicted.labels(pollutant=pollutant)
            for value in first[:, j].tolist():
                child.observe(value)


class MicroBatcher:
    """Merges concurrent requests into one forward pass; no artificial wait.

    While a forward pass runs in a worker thread (XLA releases the GIL), requests that
    arrive queue up; the next pass takes all of them. An idle server therefore answers a
    lone request immediately, and a busy one amortises per-call dispatch over the batch.
    """

    def __init__(self, predictor: Predictor, max_rows: int) -> None:
        self.predictor = predictor
        self.max_rows = max_rows
        self._pending: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = []
        self._running = False

    async def forward(self, x: np.ndarray) -> np.ndarray:
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending.append((x, future))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, rows = [], 0
                while self._pending and (
                    not batch or rows + len(self._pending[0][0]) <= self.max_rows
                ):
                    item = self._pending.pop(0)
                    batch.append(item)
                    rows += len(item[0])
                try:
                    x = np.concatenate([item[0] for item in batch])
                    y = await asyncio.to_thread(self.predictor.forward, x)
                except Exception as exc:  # hand the failure to every waiting request
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                start = 0
                for item_x, future in batch:
                    if not future.done():
                        future.set_result(y[start : start + len(item_x)])
                    start += len(item_x)
        finally:
            self._running = False


def _error(status: int, field: str, reason: str, code: str = "invalid") -> JSONResponse:
    return JSONResponse(ValidationError(field, reason, status, code=code).to_body(), status)


def _unauthorized(request: Request, token: str | None) -> JSONResponse | None:
    """401 unless the bearer token matches (constant-time); None when auth is off."""
    if not token:
        return None
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return None
    response = _error(401, "Authorization", "missing or wrong bearer token", "unauthorized")
    response.headers["WWW-Authenticate"] = 'Bearer realm="airquality"'
    return response


async def _read_body(request: Request) -> bytes:
    """Read at most MAX_BODY bytes; larger bodies are refused before being buffered."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ValidationError("Content-Length", "not a number", 400, code="bad_header")
        if int(declared) > MAX_BODY:
            raise ValidationError(
                "body", f"{declared} bytes exceeds the {MAX_BODY} byte limit", 413, code="too_large"
            )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise ValidationError(
                "body", f"more than the {MAX_BODY} byte limit", 413, code="too_large"
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def predict(request: Request) -> Response:
    service: AirQualityForecast = bentoml.get_current_service()
    if (denied := _unauthorized(request, service.token)) is not None:
        return denied
    try:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise ValidationError(
                "Content-Type",
                f"must be application/json, got {media_type or 'nothing'}",
                415,
                code="unsupported_media_type",
            )
        body = parse_json(await _read_body(request))
        meta = service.predictor.metadata
        validated = validate_request(
            body, meta.feature_names, meta.lookback, max_locations=LOCATION_CAP
        )
    except ValidationError as exc:
        service.metrics.validation_failures.labels(reason=exc.problems[0].code).inc()
        return JSONResponse(exc.to_body(), status_code=exc.status)
    try:
        x = service.predictor.features(validated)
        if service.batcher is not None:
            raw = await service.batcher.forward(x)
        else:
            raw = service.predictor.forward(x)
        result = service.predictor.respond(validated, raw)
        service.metrics.observe(meta.target_pollutants, result.values)
    except Exception:  # a bug, not bad input: log it, keep the worker alive
        logger.exception("prediction failed")
        return _error(500, "model", "internal error while predicting; see server log", "internal")
    return JSONResponse(result.body)


async def metadata(request: Request) -> Response:
    service: AirQualityForecast = bentoml.get_current_service()
    if (denied := _unauthorized(request, service.token)) is not None:
        return denied
    return JSONResponse({**service.predictor.describe(), "bentoml_model": service.model_tag})


http_app = Starlette(
    routes=[
        Route("/predict", predict, methods=["POST"]),
        Route("/metadata", metadata, methods=["GET"]),
    ]
)


@bentoml.service(
    name="airquality-forecast",
    workers=WORKERS,
    traffic={"timeout": 30},
    logging={"access": {"enabled": os.environ.get("AIRQUALITY_ACCESS_LOG", "0") == "1"}},
)
@bentoml.asgi_app(http_app, path="/")
class AirQualityForecast:
    """Loads the newest ``airquality-lstm`` model and warms every batch bucket up."""

    def __init__(self) -> None:
        stored = _stored_model()
        self.model_tag = str(stored.tag)
        self.predictor = Predictor.from_package(stored.path)
        seconds = self.predictor.warm_up()
        logger.info("loaded %s, warm-up %.1fs", self.model_tag, seconds)
        meta = self.predictor.metadata
        self.metrics = ServiceMetrics(meta.model_name, str(meta.model_version))
        self.batcher = (
            MicroBatcher(self.predictor, self.predictor.buckets[-1]) if BATCHING else None
        )
        self.token = os.environ.get("AIRQUALITY_API_TOKEN") or None

    def __is_ready__(self) -> bool:
        return self.predictor.ready
