"""HTTP plumbing shared by the live API clients: retrying session, key scrubbing, clear errors.

Retries are delegated to urllib3's :class:`~urllib3.util.retry.Retry` mounted on a
:class:`requests.Session` rather than written by hand, because urllib3 already gets the
subtle parts right (exponential backoff with jitter, ``Retry-After`` in both its seconds and
HTTP-date forms, counting connect/read/status failures against one budget, draining the
connection between attempts).

Everything that leaves this module as text (exception messages, URLs for metadata) has the
API key removed: Visual Crossing echoes the key in its 401 body, and requests/urllib3 put
the full request URL (with ``appid=``/``key=``) into their exception messages.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Self, TypeVar
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.util.retry import Retry

from airquality_assets.sources.base import SourceError

#: Transient statuses worth another attempt. 400/401/403/404 are deliberately absent: a bad
#: key or a bad location will not get better by asking again, and retrying them only burns
#: quota and delays the error the on-call engineer needs to see.
RETRY_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})

#: Query parameters that carry credentials in the APIs we call (OWM ``appid``, VC ``key``).
SECRET_PARAMS: frozenset[str] = frozenset({"appid", "key", "apikey", "api_key"})

REDACTED = "***"
USER_AGENT = "airquality-assets/0.1 (+requests)"
_MAX_REASON_CHARS = 300

_SECRET_PARAM_RE = re.compile(
    r"(?P<name>\b(?:" + "|".join(sorted(SECRET_PARAMS)) + r"))=(?P<value>[^&\s'\"#)]+)",
    re.IGNORECASE,
)
_HTML_TITLE_RE = re.compile(r"<title[^>]*>(?P<title>.*?)</title>", re.IGNORECASE | re.DOTALL)
_HTML_TAG_RE = re.compile(r"<[^>]+>")
_WHITESPACE_RE = re.compile(r"\s+")

_STATUS_HINTS: dict[int, str] = {
    400: "bad request (check the location's coordinates and the requested dates)",
    401: "unauthorized (API key wrong, not yet active, or the plan lacks this endpoint)",
    403: "forbidden (the plan does not include this endpoint)",
    404: "not found (check base_url and the endpoint path)",
    429: "rate limit or quota exceeded",
}


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before a pull fails for good.

    ``max_retries`` counts retries, so a request is sent at most ``max_retries + 1`` times.
    The sleep before retry *n* (n >= 2) is ``backoff_factor * 2**(n-1)`` plus up to
    ``backoff_jitter_s`` of random jitter, capped at ``backoff_max_s``; urllib3 retries the
    first failure immediately. A ``Retry-After`` header replaces the backoff for that attempt
    and is capped at ``max_retry_after_s`` (urllib3's ``retry_after_max``), so a hostile or
    buggy header (``Retry-After: 86400``) cannot stall a run for a day.
    """

    max_retries: int = 4
    backoff_factor: float = 1.0
    backoff_jitter_s: float = 0.5
    backoff_max_s: float = 60.0
    max_retry_after_s: int = 120

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"AIRQUALITY_HTTP_MAX_RETRIES must be >= 0, got {self.max_retries}")
        if self.max_retry_after_s < 0:
            raise ValueError("max_retry_after_s must be >= 0")

    @property
    def max_attempts(self) -> int:
        return self.max_retries + 1


@dataclass(frozen=True)
class RetryEvent:
    """One retried request: what went wrong, which attempt it was and how long until the next.

    ``status`` is the HTTP status of a retried answer (429, 5xx), None for a transport error
    or a bad 200 body, which ``error`` describes instead. ``url`` has no key in it.
    """

    url: str
    attempt: int
    max_attempts: int
    wait_s: float
    status: int | None = None
    error: str | None = None

    def __str__(self) -> str:
        what = f"HTTP {self.status}" if self.status is not None else (self.error or "error")
        return (
            f"retrying GET {self.url}: {what} on attempt {self.attempt} of "
            f"{self.max_attempts}; next attempt in {self.wait_s:.1f} s"
        )


RetryReport = Callable[[RetryEvent], None]


class ReportingRetry(Retry):
    """urllib3's ``Retry`` that tells ``report`` about every retry it grants.

    urllib3 keeps the retry loop (backoff, jitter, ``Retry-After``, one budget); this only
    hooks :meth:`increment`, which urllib3 calls once per failed attempt and which returns
    the ``Retry`` for the next one (exhausted: it raises and nothing is reported, the final
    error says it). The wait is decided there, reported, and then slept exactly by
    :meth:`sleep` (urllib3's jitter is random per call, so computing it twice would report
    one number and sleep another).
    """

    def __init__(self, *args: Any, report: RetryReport | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.report = report
        self.planned_wait_s: float | None = None

    def new(self, **kw: Any) -> Self:
        new = super().new(**kw)
        new.report = self.report  # urllib3 rebuilds the Retry from its own fields only
        return new

    def increment(  # type: ignore[override]
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> Self:
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        new.planned_wait_s = new._wait(response)
        if self.report is not None:
            attempt = len(new.history)
            remaining = new.total if isinstance(new.total, int) else 0
            where = url or ""
            if _pool is not None and where.startswith("/"):  # urllib3 passes the path only
                where = f"{_pool.scheme}://{_pool.host}:{_pool.port}{where}"
            self.report(
                RetryEvent(
                    url=redact_url(where),
                    attempt=attempt,
                    max_attempts=attempt + remaining + 1,
                    wait_s=new.planned_wait_s,
                    status=getattr(response, "status", None),
                    error=None if error is None else _retry_error_text(error),
                )
            )
        return new

    def _wait(self, response: Any) -> float:
        """What urllib3's ``sleep`` would wait: ``Retry-After`` first, else the backoff."""
        if self.respect_retry_after_header and response is not None:
            after = self.get_retry_after(response)
            if after:
                return float(after)
        return float(self.get_backoff_time())

    def sleep(self, response: Any = None) -> None:
        wait = self._wait(response) if self.planned_wait_s is None else self.planned_wait_s
        if wait > 0:
            time.sleep(wait)


def _retry_error_text(error: Exception) -> str:
    """A transport error or a bad body, in a few words and without a URL (keys live there)."""
    if isinstance(error, ReadTimeoutError):
        return "read timed out"
    if isinstance(error, NewConnectionError):  # a subclass of ConnectTimeoutError: first
        return "could not connect"
    if isinstance(error, ConnectTimeoutError):
        return "connect timed out"
    if isinstance(error, BadBodyError):
        return _trim(str(error), 160)  # says what was wrong with the body
    return type(error).__name__


def build_retry(policy: RetryPolicy, report: RetryReport | None = None) -> Retry:
    """The urllib3 retry configuration for a policy; ``report`` hears of every retry.

    Only ``total`` is set, so connection errors, read timeouts and retryable statuses all
    draw on one budget and a pull makes at most ``policy.max_attempts`` requests.
    ``raise_on_status=False`` makes urllib3 hand back the last failed response instead of
    raising ``MaxRetryError``, so its status and body can go into a :class:`SourceError`.
    """
    return ReportingRetry(
        report=report,
        total=policy.max_retries,
        allowed_methods=frozenset({"GET"}),
        status_forcelist=RETRY_STATUSES,
        backoff_factor=policy.backoff_factor,
        backoff_jitter=policy.backoff_jitter_s,
        backoff_max=policy.backoff_max_s,
        respect_retry_after_header=True,
        retry_after_max=policy.max_retry_after_s,
        raise_on_status=False,
    )


def build_session(
    policy: RetryPolicy, user_agent: str = USER_AGENT, report: RetryReport | None = None
) -> requests.Session:
    """A :class:`requests.Session` that retries transient failures according to ``policy``
    and tells ``report`` about each retry."""
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=build_retry(policy, report))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers.update({"User-Agent": user_agent, "Accept": "application/json"})
    return session


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove API keys from ``text``: literal values (also URL-quoted) and ``key=...`` params.

    The literal pass catches keys echoed in prose (VC: ``No account found with API key
    'XXXX'``); the parameter pass catches URLs even when the secret is not known here.
    """
    for secret in secrets:
        if not secret:
            continue
        for variant in {secret, quote(secret, safe=""), quote_plus(secret)}:
            text = text.replace(variant, REDACTED)
    return _SECRET_PARAM_RE.sub(lambda m: f"{m.group('name')}={REDACTED}", text)


class _ScrubSecrets(logging.Filter):
    """Takes credential query parameters out of a log record's text. urllib3 logs every retry
    at WARNING with the request path, query (``appid=``/``key=``) included; with no handler
    configured Python prints it to stderr, which Dagster keeps in the run's compute logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        cleaned = scrub(text)
        if cleaned != text:
            record.msg, record.args = cleaned, None
        return True


#: Installed once, on import of the clients' plumbing: urllib3's own retry warnings.
logging.getLogger("urllib3.connectionpool").addFilter(_ScrubSecrets())


def redact_url(url: str) -> str:
    """``url`` with every credential query parameter removed (for metadata and logs)."""
    parts = urlsplit(url)
    kept = [
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if name.lower() not in SECRET_PARAMS
    ]
    return urlunsplit(parts._replace(query=urlencode(kept)))


def format_coordinate(value: float) -> str:
    """Decimal degrees as plain text (no exponent), at most 6 decimals (about 0.1 m)."""
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _trim(text: str, limit: int = _MAX_REASON_CHARS) -> str:
    text = _WHITESPACE_RE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def summarize_body(body: bytes, secrets: Sequence[str] = ()) -> str:
    """A short, key-free description of an error body, whatever format it came in.

    OWM sends JSON ``{"cod": 401 | "400", "message": ...}`` (``cod`` is an int for some
    errors and a string for others, so it is not relied on); VC sends plain text; proxies in
    front of either send HTML error pages, for which the ``<title>`` (or the tag-stripped
    text) is enough.
    """
    text = scrub(body.decode("utf-8", errors="replace"), secrets).strip()
    if not text:
        return "(empty body)"
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str | int | float):
        return _trim(str(parsed["message"]))
    if text.startswith("<"):
        title = _HTML_TITLE_RE.search(text)
        text = title.group("title") if title else _HTML_TAG_RE.sub(" ", text)
        return _trim(text) or "(HTML page without text)"
    return _trim(text)


def status_hint(status: int) -> str:
    """What a status usually means for these APIs, so the error says what to check."""
    if status in _STATUS_HINTS:
        return _STATUS_HINTS[status]
    if status >= 500:
        return "server error"
    return "unexpected response"


def attempts_made(response: requests.Response) -> int:
    """How many requests urllib3 sent to obtain ``response`` (1 + retries taken)."""
    retries = getattr(response.raw, "retries", None)
    history = getattr(retries, "history", None) or ()
    return len(history) + 1


@dataclass(frozen=True)
class CallContext:
    """What one pull is about, so every error it raises names it (and never the key)."""

    source: str
    location: str
    time_range: str
    api_key: str

    def error(self, reason: str, status: int | None = None) -> SourceError:
        """A :class:`SourceError` for this call, with the key scrubbed out of ``reason``."""
        return SourceError(
            source=self.source,
            location=self.location,
            time_range=self.time_range,
            reason=scrub(reason, [self.api_key]),
            status=status,
        )


def error_from_response(response: requests.Response, ctx: CallContext) -> SourceError:
    """Turn a final non-2xx response into a :class:`SourceError` (status, hint, body gist)."""
    status = response.status_code
    reason = f"{status_hint(status)}: {summarize_body(response.content, [ctx.api_key])}"
    attempts = attempts_made(response)
    if attempts > 1:
        reason += f" (gave up after {attempts} attempts)"
    return ctx.error(reason, status=status)


def _describe_transport_error(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, ReadTimeoutError | requests.exceptions.ReadTimeout):
        return f"read timed out (timeout {timeout_s:g} s)"
    if isinstance(exc, NewConnectionError):
        return f"could not connect: {exc}"
    if isinstance(exc, ConnectTimeoutError | requests.exceptions.ConnectTimeout):
        return f"connect timed out (timeout {timeout_s:g} s)"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        # Headers arrived but the body was cut off (requests reads bodies after urllib3's
        # retry loop, so :func:`get_validated` retries these itself).
        return f"connection broken while reading the response body: {exc}"
    return f"{type(exc).__name__}: {exc}"


def error_from_exception(
    exc: requests.RequestException, ctx: CallContext, timeout_s: float, max_attempts: int
) -> SourceError:
    """Turn a transport failure (refused, timed out, reset, bad header) into a SourceError.

    requests wraps urllib3's ``MaxRetryError`` (whose text contains the full URL, key
    included); the underlying cause is more useful and is what gets described.
    """
    inner = exc.args[0] if exc.args else None
    if isinstance(inner, MaxRetryError) and inner.reason is not None:
        reason = _describe_transport_error(inner.reason, timeout_s)
        reason += f" (gave up after {max_attempts} attempts)"
    else:
        reason = _describe_transport_error(exc, timeout_s)
    return ctx.error(_trim(scrub(reason, [ctx.api_key])), status=None)


class BadBodyError(ValueError):
    """A 2xx answer whose body cannot be used: truncated, not JSON, or not the documented shape.

    Raised by a client's body validator; :func:`get_validated` retries it like a 5xx.
    """


T = TypeVar("T")

#: Transport failures that happen while the *body* is read: requests reads it after urllib3's
#: own retry loop has returned, so urllib3 never retries them.
_BODY_TRANSPORT_ERRORS = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


def get_validated(
    session: requests.Session,
    url: str,
    params: Sequence[tuple[str, str]],
    timeout_s: float,
    ctx: CallContext,
    policy: RetryPolicy,
    validate: Callable[[requests.Response], T],
    inspect: Callable[[requests.Response], None] | None = None,
    report: RetryReport | None = None,
) -> tuple[requests.Response, T]:
    """GET, then validate the 2xx body; a bad body is retried like a 5xx.

    A truncated or unparseable 200 is as transient as a 502 (a proxy hiccup, a dropped
    connection behind a CDN), so it gets the same treatment: urllib3's ``Retry`` computes the
    backoff (exponential, jitter, ``backoff_max``) and counts the budget
    (``policy.max_retries``); only the loop is ours, because urllib3 never sees the body.
    After the last try the error names the parse problem and how many bytes arrived.
    ``validate`` raises :class:`BadBodyError` for a retryable body and may raise
    :class:`SourceError` for a final answer (e.g. a quota text). A non-2xx answer or a
    transport error (urllib3 already retried them) becomes a :class:`SourceError`, raised
    outside the ``except`` block on purpose: chaining would attach the requests exception,
    whose message contains the URL with the key, to every logged traceback.
    ``inspect`` sees every answer first, whatever its status (VC's quota texts). ``report``
    hears of each retry of a bad body (the session's own ``Retry`` reports the others).
    """
    retry = build_retry(policy, report)
    attempts = 0
    while True:
        attempts += 1
        failure: SourceError | None = None
        status: int | None = None
        try:
            response = session.get(url, params=list(params), timeout=timeout_s)
        except _BODY_TRANSPORT_ERRORS as exc:
            problem = _describe_transport_error(exc, timeout_s)
            received = "the body was cut off"
        except requests.RequestException as exc:
            failure = error_from_exception(exc, ctx, timeout_s, policy.max_attempts)
        else:
            if inspect is not None:
                inspect(response)
            if not response.ok:
                raise error_from_response(response, ctx)
            try:
                return response, validate(response)
            except BadBodyError as exc:
                problem = str(exc)
                received = f"{len(response.content)} bytes received"
                status = response.status_code
        if failure is not None:  # raised here, not in the handler: no chained URL with the key
            raise failure
        try:
            retry = retry.increment(method="GET", url=redact_url(url), error=BadBodyError(problem))
        except MaxRetryError:
            failure = ctx.error(
                _trim(f"{problem}; {received} (gave up after {attempts} attempts)", 600),
                status=status,
            )
        if failure is not None:
            raise failure
        retry.sleep()


def json_object(body: bytes, array_key: str, secrets: Sequence[str]) -> dict[str, Any]:
    """A 200 body decoded, if it is a JSON object with an ``array_key`` array.

    A 200 is not trusted blindly: a proxy can return an HTML page, and a dropped connection
    can leave truncated JSON; storing either would poison the raw asset, so either raises
    :class:`BadBodyError` (retried, then a clear failure).
    """
    try:
        payload = json.loads(body)
    except ValueError as exc:
        gist = summarize_body(body, secrets)
        raise BadBodyError(
            f"body is not valid JSON (truncated or not JSON: {exc}): {gist}"
        ) from None
    if not isinstance(payload, dict) or not isinstance(payload.get(array_key), list):
        found = sorted(payload)[:10] if isinstance(payload, dict) else type(payload).__name__
        raise BadBodyError(f"JSON body has no {array_key!r} array (found {found})")
    return payload


def utc_now() -> datetime:
    return datetime.now(UTC)


#: How long after its issue hour a live forecast may still be pulled under that issue: the
#: default issue cadence (6 h). Later, the API's current forecast is another issue's.
DEFAULT_ISSUE_MAX_AGE = timedelta(hours=6)


def live_issue(issued_at: datetime, now: datetime, max_age: timedelta) -> datetime:
    """``issued_at`` floored to its UTC hour, if a live API can still serve that issue.

    A live API answers with its current forecast only: an issue after ``now`` does not exist
    yet, and one ``max_age`` or more before ``now`` is gone (no archive). Either is a
    ``ValueError`` (a caller's mistake, raised before anything is sent).
    """
    if issued_at.tzinfo is None or issued_at.utcoffset() is None:
        raise ValueError(f"issued_at must be timezone-aware (UTC), got {issued_at.isoformat()}")
    issue = issued_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if issue > now:
        raise ValueError(
            f"forecast issue {issue:%Y-%m-%dT%H}Z is after the clock ({now:%Y-%m-%dT%H:%M}Z)"
        )
    if now - issue >= max_age:
        raise ValueError(
            f"forecast issue {issue:%Y-%m-%dT%H}Z is {now - issue} old: a live API serves only "
            f"its current forecast (no archive), so issues older than {max_age} cannot be pulled"
        )
    return issue


class ApiClient:
    """What the live clients share: the key (checked, never shown), the retrying session,
    the timeout and the clock."""

    source_name: str

    def __init__(
        self,
        api_key: str,
        base_url: str,
        timeout_s: float,
        policy: RetryPolicy,
        clock: Callable[[], datetime] = utc_now,
        *,
        key_variable: str,
    ) -> None:
        if not api_key:
            raise ValueError(f"{self.source_name} api_key is empty (is {key_variable} set?)")
        if not timeout_s > 0:  # requests refuses 0 only when the first request is sent
            raise ValueError(f"AIRQUALITY_HTTP_TIMEOUT_S must be > 0, got {timeout_s}")
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.policy = policy
        #: Told about every retried request (a run sets it to log them); None: not told.
        self.on_retry: RetryReport | None = None
        #: Retries this client has made, over all its requests.
        self.retries_taken = 0
        self._session = build_session(policy, report=self._retried)
        self._clock = clock

    def _retried(self, event: RetryEvent) -> None:
        self.retries_taken += 1
        if self.on_retry is not None:
            self.on_retry(event)

    def __repr__(self) -> str:  # never show the key
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def now(self) -> datetime:
        """Wall-clock UTC floored to the hour: both APIs' records are on whole UTC hours."""
        return self._clock().astimezone(UTC).replace(minute=0, second=0, microsecond=0)

    def close(self) -> None:
        """Release pooled connections."""
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class MinIntervalThrottle:
    """Keeps at least ``min_interval_s`` between the starts of consecutive calls.

    A client-side guard for per-minute limits (OWM free plan: 60 calls/min). It spaces
    logical calls; the retries urllib3 makes inside one call are spaced by backoff and
    ``Retry-After`` instead. Thread-safe, per instance (per process), not global.
    """

    def __init__(self, min_interval_s: float) -> None:
        if min_interval_s < 0:
            raise ValueError(f"OPENWEATHER_MIN_INTERVAL_S must be >= 0, got {min_interval_s}")
        self.min_interval_s = min_interval_s
        self._lock = threading.Lock()
        self._last_start: float | None = None

    def wait(self) -> None:
        """Block until the next call may start, then record that it starts now."""
        with self._lock:
            now = time.monotonic()
            if self._last_start is not None:
                delay = self._last_start + self.min_interval_s - now
                if delay > 0:
                    time.sleep(delay)
                    now = time.monotonic()
            self._last_start = now
