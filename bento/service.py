"""BentoML service for the champion air-quality LSTM.

Serve (after the training job has imported a model into the BentoML store)::

    bentoml serve service:AirQualityForecast --working-dir bento --host 127.0.0.1 --port 3000

``/predict`` and ``/metadata`` are ``@bentoml.api`` methods with typed pydantic models built
from the served model's metadata, so ``bentoml.SyncHTTPClient(url).predict(locations=...)``
works and OpenAPI (``/docs.json``, Swagger UI at ``/``) shows their schemas and an example.
BentoML 1.4 answers a body its models reject with its own, unbounded error shape and parses
it on the event loop; :class:`RequestGate` (``airquality_assets.serving.gate``) therefore
validates ``/predict`` first, with the same models, and answers every bad request with one
documented, bounded error body; the API method receives the validated request. Settings:
:class:`airquality_assets.serving.config.ServiceConfig`, read once below. A newly promoted
champion with the same request contract is swapped in while serving
(:mod:`airquality_assets.serving.reload`). A model that reads the weather forecast of its
target hours makes every location of a request carry ``forecast`` (the contract and
``/metadata`` say which fields, for how many hours); both inputs are batched together.

``GET /forecast?location=<name>`` answers from the forecast store the loop's ``forecasts``
asset writes (:mod:`airquality_assets.serving.latest`): the newest issue as stored, with
``ETag``/``Last-Modified`` (304 when unchanged), 404 for a location with none and 503 when
the newest is older than ``AIRQUALITY_FORECAST_MAX_AGE_HOURS`` on the deployment's clock;
``GET /forecast/page`` draws the same store as a page for people
(:mod:`airquality_assets.serving.page`; Swagger UI stays at ``/``).
Where that store is and what the clock says come from the pipeline's own
:class:`~airquality_assets.settings.Settings`, also read once below, so the service reads
the files the loop wrote by the same rule (``AIRQUALITY_STORAGE_URL``, else
``AIRQUALITY_DATA_DIR``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airquality_assets.serving.config import ServiceConfig
from airquality_assets.settings import Settings

CONFIG = ServiceConfig.from_env(os.environ)  # the one read of the service's settings
#: The pipeline's settings, read once: where the loop stores forecasts, and its clock.
DEPLOYMENT = Settings.from_env(os.environ)

os.environ.setdefault("KERAS_BACKEND", "jax")  # before anything imports keras
if CONFIG.xla_threads and "xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + " --xla_cpu_multi_thread_eigen=false"
        + f" intra_op_parallelism_threads={CONFIG.xla_threads}"
    ).strip()

import attr  # noqa: E402
import bentoml  # noqa: E402
import yaml  # noqa: E402
from bentoml._internal.service.openapi.specification import OpenAPISpecification  # noqa: E402

from airquality_assets.serving import gc_pauses, http_limits, instance  # noqa: E402

# A metrics folder of this instance's own (another on the same BENTOML_HOME would empty a
# shared one), and limits on request heads, both before BentoML starts its workers.
instance.own_metrics_dir(os.environ)
http_limits.install(CONFIG.max_header_bytes, CONFIG.header_timeout_s)
import numpy as np  # noqa: E402
from bentoml.exceptions import NotFound  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import HTMLResponse, JSONResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402
from typing_extensions import override  # noqa: E402

from airquality_assets.ml.package import read_metadata  # noqa: E402
from airquality_assets.monitoring.forecasting import ForecastStore  # noqa: E402
from airquality_assets.serving.gate import (  # noqa: E402
    FORECAST_PAGE_PATH,
    FORECAST_PATH,
    METADATA_PATH,
    PREDICT_PATH,
    UNMATCHED_PATH,
    VALIDATED_KEY,
    BoundedPaths,
    GatePolicy,
    Parser,
    RequestGate,
    static_paths,
)
from airquality_assets.serving.integrity import CorruptModel, verify_package  # noqa: E402
from airquality_assets.serving.latest import LatestForecast, LatestForecasts  # noqa: E402
from airquality_assets.serving.metrics import ServiceMetrics  # noqa: E402
from airquality_assets.serving.openapi import Limits, as_openapi_30, state_rules  # noqa: E402
from airquality_assets.serving.page import render_page  # noqa: E402
from airquality_assets.serving.predictor import Predictor  # noqa: E402
from airquality_assets.serving.reload import ChampionWatcher, IncompatibleChampion  # noqa: E402
from airquality_assets.serving.request import (  # noqa: E402
    DEW_ABOVE_TEMP_TOLERANCE,
    ErrorBody,
    Forecasts,
    RequestSpec,
    ServedModel,
    ValidatedRequest,
    parse_request,
    request_model,
)

logger = logging.getLogger("bentoml.airquality")

NO_MODEL_MESSAGE = (
    "No '{tag}' model in the BentoML model store ({home}). Run the training job first: "
    "`bash scripts/demo.sh` (or materialize `champion_model` and `bento` in Dagster), which "
    "promotes a champion and imports it into this store."
)
HTTP_REASONS = {
    400: "Not JSON, or not a JSON object",
    401: "Missing or wrong bearer token",
    408: "Body not received in time",
    413: "Body larger than the limit",
    415: "Content-Type is not application/json",
    422: "A JSON object that breaks the request contract",
}
FORECAST_REASONS = {
    401: "Missing or wrong bearer token",
    404: "No forecast stored for this location",
    422: "No `location` query parameter",
    503: "The newest stored forecast is older than AIRQUALITY_FORECAST_MAX_AGE_HOURS",
}
INLINE_PARSE_BYTES = 16_384  # one location is ~6 KB and parses in well under a millisecond
OPEN_PATHS = ("/livez", "/healthz", "/readyz", "/metrics", "/schema.json", "/docs.json", "/")


def _stored_model() -> Any:
    """The model to serve, or a clear start-up failure telling the operator what to run."""
    try:
        stored = bentoml.models.get(CONFIG.model_tag)
    except NotFound:
        home = os.environ.get("BENTOML_HOME", "~/bentoml")
        raise RuntimeError(NO_MODEL_MESSAGE.format(tag=CONFIG.model_tag, home=home)) from None
    try:  # before any worker loads it: a corrupt file would fail every worker, forever
        verify_package(stored.path)
    except CorruptModel as exc:
        raise RuntimeError(
            f"cannot serve {stored.tag}: {exc}. Import the champion again (materialize "
            "`bento`) or serve another version (AIRQUALITY_MODEL_VERSION)."
        ) from None
    return stored


# At import: `bentoml serve` imports this module before starting workers, so a missing model
# stops the server with the message above; the request models follow the stored model.
STORED = _stored_model()
METADATA = read_metadata(STORED.path)
SPEC = RequestSpec.for_model(METADATA, CONFIG.max_locations)
PredictRequest = request_model(SPEC)


class PredictInput(PredictRequest, bentoml.IODescriptor):  # type: ignore[misc, valid-type]
    __doc__ = PredictRequest.__doc__

    # The gate has validated the body already: hand it over instead of parsing it twice.
    @classmethod
    @override
    async def from_http_request(cls, request: Request, serde: Any) -> Any:
        validated = request.scope.get(VALIDATED_KEY)
        if validated is None:  # not through the gate (cannot happen via HTTP): validate here
            validated = parse_request(await request.body(), SPEC)
            request.scope[VALIDATED_KEY] = validated
        return cls.model_construct(locations=[])


class NoInput(bentoml.IODescriptor):
    """/metadata takes nothing; a body is ignored, never parsed."""

    @classmethod
    @override
    async def from_http_request(cls, request: Request, serde: Any) -> Any:
        return cls()


class MicroBatcher:
    """Merges concurrent requests into one forward pass; no artificial wait.

    While a forward pass runs in a worker thread (XLA releases the GIL), requests that
    arrive queue up; the next pass takes all of them. An idle server therefore answers a
    lone request immediately, and a busy one amortises per-call dispatch over the batch.
    """

    def __init__(self, predictor: Predictor, max_rows: int) -> None:
        self.predictor = predictor
        self.max_rows = max_rows
        self._pending: list[tuple[list[np.ndarray], asyncio.Future[np.ndarray]]] = []
        self._running = False

    async def forward(self, inputs: list[np.ndarray]) -> np.ndarray:
        """One request's model inputs (:meth:`Predictor.inputs`) -> its forecast rows."""
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending.append((inputs, future))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, rows = [], 0
                while self._pending and (
                    not batch or rows + len(self._pending[0][0][0]) <= self.max_rows
                ):
                    item = self._pending.pop(0)
                    batch.append(item)
                    rows += len(item[0][0])
                try:
                    # Each model input stacked over the batch's requests, in the same order.
                    stacked = zip(*(item[0] for item in batch), strict=True)
                    arrays = [np.concatenate(parts) for parts in stacked]
                    y = await asyncio.to_thread(self.predictor.forward, *arrays)
                except Exception as exc:  # hand the failure to every waiting request
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                start = 0
                for item_inputs, future in batch:
                    n = len(item_inputs[0])
                    if not future.done():
                        future.set_result(y[start : start + n])
                    start += n
        finally:
            self._running = False


@dataclass(frozen=True)
class Served:
    """One loaded, warmed-up model and its batcher: what a request is answered with.

    The service swaps the whole object in one assignment, so a request never mixes the
    features of one model with the forward pass or response of another.
    """

    model_tag: str
    predictor: Predictor
    batcher: MicroBatcher | None


def load_served(tag: str) -> Served:
    """Load and warm up a stored model; refuses a corrupt one (:class:`CorruptModel`) and
    one whose request contract differs."""
    stored = bentoml.models.get(tag)
    verify_package(stored.path)
    meta = read_metadata(stored.path)
    spec = RequestSpec.for_model(meta, CONFIG.max_locations)
    if spec != SPEC:
        raise IncompatibleChampion(
            f"its request contract ({spec.describe()}) is not the served one ({SPEC.describe()})"
        )
    predictor = Predictor.from_package(stored.path)
    predictor.warm_up()
    batcher = MicroBatcher(predictor, predictor.buckets[-1]) if CONFIG.batching else None
    return Served(str(stored.tag), predictor, batcher)


class _OpenAPI30(OpenAPISpecification):
    """BentoML's spec, served (``/docs.json``) and written into a bento as OpenAPI 3.0 with
    the server's rules stated (:mod:`airquality_assets.serving.openapi`)."""

    def asdict(self) -> dict[str, Any]:
        limits = Limits(
            max_body_bytes=CONFIG.max_body_bytes,
            body_timeout_s=CONFIG.body_timeout_s,
            max_header_bytes=CONFIG.max_header_bytes,
            header_timeout_s=CONFIG.header_timeout_s,
            max_locations=SPEC.max_locations,
            dew_tolerance=DEW_ABOVE_TEMP_TOLERANCE,
        )
        return state_rules(as_openapi_30(super().asdict()), limits)


yaml.add_representer(_OpenAPI30, lambda dumper, spec: dumper.represent_dict(spec.asdict()))


class BoundedPathService(bentoml.Service):  # type: ignore[type-arg]
    """A ``bentoml.Service`` whose ASGI app is wrapped in :class:`BoundedPaths`.

    ``service_class`` of ``@bentoml.service`` is the hook: BentoML's request metrics sit
    outside every service middleware and label by raw path, so only a wrapper around the
    whole app can keep unknown paths out of their label set.
    """

    def to_asgi(self, is_main: bool = True) -> Any:
        app = super().to_asgi(is_main)
        known = {PREDICT_PATH, METADATA_PATH, FORECAST_PATH, FORECAST_PAGE_PATH, UNMATCHED_PATH}
        known |= set(OPEN_PATHS)
        for route in app.routes:
            static = getattr(getattr(route, "app", None), "directory", None)
            if static:
                known |= static_paths(str(static), route.path)
        return BoundedPaths(app, known)

    @property
    def openapi_spec(self) -> Any:
        """BentoML's spec, with the gate's error body as the 4xx answer of both methods, and
        ``GET /forecast`` (a plain route, which BentoML does not list) described."""
        from bentoml._internal.service.openapi.specification import (
            MediaType,
            PathItem,
            Reference,
            Schema,
        )
        from bentoml._internal.service.openapi.specification import Response as Answer

        spec = super().openapi_spec
        schemas = spec.components["schemas"]
        schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas[name] = Schema(**definition)
        schemas["ErrorBody"] = Schema(**schema)
        content = {
            "application/json": MediaType(schema=Reference("#/components/schemas/ErrorBody"))
        }
        for path in (PREDICT_PATH, METADATA_PATH):
            responses = spec.paths[path].post["responses"]
            for status in (400, 401, 408, 413, 415, 422):
                if path == METADATA_PATH and status not in (401, 413):
                    responses.pop(status, None)
                    continue
                responses[status] = Answer(description=HTTP_REASONS[status], content=content)
        latest = LatestForecast.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in latest.pop("$defs", {}).items():
            schemas.setdefault(name, Schema(**definition))
        schemas["LatestForecast"] = Schema(**latest)
        answers: dict[Any, Any] = {
            200: Answer(
                description="The newest stored forecast (ETag, Last-Modified)",
                content={
                    "application/json": MediaType(
                        schema=Reference("#/components/schemas/LatestForecast")
                    )
                },
            ),
            304: Answer(description="Unchanged since the client's If-None-Match"),
            **{
                status: Answer(description=reason, content=content)
                for status, reason in FORECAST_REASONS.items()
            },
        }
        spec.paths[FORECAST_PATH] = PathItem(
            get={
                "summary": "The newest stored forecast of one location",
                "description": (
                    "What the loop issued last for the location, as stored: per horizon "
                    "the target time, the value and the OWM AQI band, with the issue time, "
                    "when it was computed and the model. No model runs."
                ),
                "parameters": [
                    {
                        "name": "location",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": answers,
            }
        )
        return _OpenAPI30(**{f.name: getattr(spec, f.name) for f in attr.fields(type(spec))})


async def get_metadata(_request: Request) -> Response:
    """GET /metadata for curl and browsers (the BentoML API method answers POST)."""
    service: AirQualityForecast = bentoml.get_current_service()
    return JSONResponse(service.served_model().model_dump())


async def get_forecast(request: Request) -> Response:
    """GET /forecast?location=<name>: the newest stored forecast (serving.latest)."""
    service: AirQualityForecast = bentoml.get_current_service()
    answer = await asyncio.to_thread(  # reads the store: off the event loop
        service.forecasts.answer,
        request.query_params.get("location"),
        request.headers.get("if-none-match"),
        request.headers.get("if-modified-since"),
    )
    return Response(answer.body, status_code=answer.status, headers=answer.headers)


async def get_forecast_page(request: Request) -> Response:
    """GET /forecast/page[?location=<name>]: the stored forecasts for people (serving.page)."""
    service: AirQualityForecast = bentoml.get_current_service()
    latest = service.forecasts
    status, html = await asyncio.to_thread(
        render_page,
        latest.reader,
        latest.now(),
        latest.max_age,
        request.query_params.get("location"),
    )
    return HTMLResponse(html, status_code=status, headers={"cache-control": "no-cache"})


metadata_app = Starlette(
    routes=[
        Route(METADATA_PATH, get_metadata, methods=["GET"]),
        Route(FORECAST_PATH, get_forecast, methods=["GET"]),
        Route(FORECAST_PAGE_PATH, get_forecast_page, methods=["GET"]),
    ]
)


@bentoml.service(
    name="airquality-forecast",
    service_class=BoundedPathService,
    workers=CONFIG.workers,
    traffic={"timeout": 30},
    logging={"access": {"enabled": CONFIG.access_log}},
)
@bentoml.asgi_app(metadata_app, path="/")
class AirQualityForecast:
    """Loads the configured model, warms every batch bucket up, then serves it."""

    model = bentoml.models.BentoModel(CONFIG.model_tag)  # packed into the bento at build

    def __init__(self) -> None:
        predictor = Predictor.from_package(STORED.path)
        seconds = predictor.warm_up()
        batcher = MicroBatcher(predictor, predictor.buckets[-1]) if CONFIG.batching else None
        self.served = Served(str(STORED.tag), predictor, batcher)
        meta = predictor.metadata
        self.metrics = ServiceMetrics(meta.model_name, str(meta.model_version))
        self.watcher: ChampionWatcher[Served] | None = None
        if CONFIG.model_version == "latest" and CONFIG.reload_poll_s > 0:
            self.watcher = ChampionWatcher(
                served_tag=self.served.model_tag,
                latest_tag=lambda: str(bentoml.models.get(CONFIG.model_tag).tag),
                load=load_served,
                swap=self._swap,
                poll_s=CONFIG.reload_poll_s,
                log=logger.info,
            )
            self.watcher.start()
        self.forecasts = LatestForecasts(
            reader=ForecastStore(DEPLOYMENT.storage_root),
            now=DEPLOYMENT.clock.now,
            max_age=timedelta(hours=CONFIG.forecast_max_age_hours),
        )
        self.parser = Parser(SPEC, inline_bytes=INLINE_PARSE_BYTES)
        self.parser.warm_up()  # the validation process for large bodies, started now
        self.policy = GatePolicy(
            spec=SPEC,
            parser=self.parser,
            token=CONFIG.token,
            max_body_bytes=CONFIG.max_body_bytes,
            body_timeout_s=CONFIG.body_timeout_s,
            on_refused=self.metrics.refusal,
        )
        protected = "/predict, /metadata, /forecast and /forecast/page"
        auth = f"ON (bearer token) for {protected}" if CONFIG.token else "OFF"
        reload = f"every {CONFIG.reload_poll_s:g}s" if self.watcher else "off"
        logger.info(
            "serving %s (warm-up %.1fs); champion reload %s; auth %s; open paths: %s; "
            "forecasts from %s (stale after %gh on the %s clock)",
            self.served.model_tag,
            seconds,
            reload,
            auth,
            " ".join(OPEN_PATHS) + " (Swagger UI, static assets)",
            DEPLOYMENT.storage_root,
            CONFIG.forecast_max_age_hours,
            "replay" if DEPLOYMENT.clock.is_replay else "wall",
        )
        gc_pauses.settle()  # start-up's objects out of every later full collection

    def _swap(self, served: Served) -> None:
        old = self.served.predictor.metadata
        self.served = served  # one assignment: the next request gets the new model
        new = served.predictor.metadata
        self.metrics.set_model(
            (old.model_name, str(old.model_version)), (new.model_name, str(new.model_version))
        )
        gc_pauses.settle()

    def __is_ready__(self) -> bool:
        return self.served.predictor.ready

    @bentoml.on_shutdown
    def stop_parser(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.parser.close()

    def served_model(self) -> ServedModel:
        served = self.served
        return ServedModel(
            **served.predictor.describe(),
            bentoml_model=served.model_tag,
            max_locations=SPEC.max_locations,
        )

    @bentoml.api(route=PREDICT_PATH, input_spec=PredictInput, output_spec=Forecasts)
    async def predict(
        self,
        locations: list[Any],  # noqa: ARG002 (BentoML passes the input by name; the gate parsed it)
        ctx: bentoml.Context,
    ) -> Response:
        """Forecast every pollutant the model knows, per location and horizon, with AQI bands.

        The body is validated before this runs; a bad one gets 400/401/408/413/415/422 with
        ``{"error", "details": [{"field", "reason", "code"}], "problem_count", "truncated"}``.
        """
        request: ValidatedRequest = ctx.request.scope[VALIDATED_KEY]
        served = self.served  # this request's model, even if a new champion swaps in now
        inputs = served.predictor.inputs(request)  # observations [, forecast weather]
        if served.batcher is not None:
            raw = await served.batcher.forward(inputs)
        else:
            raw = await asyncio.to_thread(served.predictor.forward, *inputs)
        result = served.predictor.respond(request, raw)
        self.metrics.observe(served.predictor.metadata.target_pollutants, result.values)
        return Response(result.json_bytes(), media_type="application/json")

    @bentoml.api(route=METADATA_PATH, input_spec=NoInput)
    def metadata(self) -> ServedModel:
        """The served model: name, version, features, required fields, lookback, horizons,
        and the forecast a request carries (fields and hours; none for observations only)."""
        return self.served_model()


AirQualityForecast.add_asgi_middleware(
    RequestGate, policy=lambda: bentoml.get_current_service().policy
)
