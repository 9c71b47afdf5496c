"""The Dagster instance's own classes (``dagster.yaml``, ``deploy/dagster.yaml``): what
Dagster's stock ones lack.

* :class:`WatchedRunLauncher` (both instance files): Dagster's default launcher (each run a
  subprocess of the code server) plus a run-worker health check, so run monitoring can fail
  a run whose process died: the stock launcher has none, and a SIGKILLed run, or one whose
  code server died, stayed STARTED for good, held one of the queue's slots and kept its
  planned checks open (terminating it failed with "Could not find a server for run").
* :class:`ReconnectingPostgresStorage` (``deploy/dagster.yaml``): Dagster's PostgreSQL
  storage whose pooled connections (the webserver keeps one per store) are checked before
  use, so a database restart costs no failed request; the stock pool handed out the dead
  connection and the webserver answered 500 ("server closed the connection unexpectedly").

Only Dagster and its PostgreSQL library are imported: the webserver and the daemon load
this module with the instance, before and apart from the code location.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from dagster import DefaultRunLauncher, Field
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._serdes.config_class import ConfigurableClassData
from dagster_postgres import (
    DagsterPostgresStorage,
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config
from typing_extensions import override

#: ``<host>:<pid>`` of the process executing a run that no code server launched (the demo,
#: the simulation: they execute runs in a process of their own).
RUN_WORKER_TAG = "airquality/run_worker"
#: How long a run's code server may be unreachable before the launcher counts the run as
#: dead: longer than a container restart (the server is back, without the run, within a
#: minute, and then says so), short enough that a slot is not held for long by a server that
#: never comes back. An instance file may set ``unreachable_grace_seconds``.
UNREACHABLE_GRACE_SECONDS = 300.0
#: Seconds one health query may take (the daemon checks every started run in turn).
HEALTH_QUERY_TIMEOUT_SECONDS = 10


def this_process_tag() -> dict[str, str]:
    """The :data:`RUN_WORKER_TAG` of a run executed in this process."""
    return {RUN_WORKER_TAG: f"{socket.gethostname()}:{os.getpid()}"}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


@dataclass(frozen=True)
class _Probe:
    """One health query's answer, and whether it came from not reaching the code server
    (the launcher gives that a grace period; a single answer cannot tell a blip)."""

    result: CheckRunHealthResult
    unreachable: bool = False


def _grpc_probe(run_id: str, info: Mapping[str, Any]) -> _Probe:
    import grpc
    from dagster._core.errors import DagsterUserCodeUnreachableError
    from dagster._grpc.client import DagsterGrpcClient
    from dagster._grpc.types import CanCancelExecutionRequest, CanCancelExecutionResult
    from dagster._serdes import deserialize_value

    where = info.get("socket") or f"{info.get('host')}:{info.get('port')}"
    client = DagsterGrpcClient(
        port=info.get("port"),
        socket=info.get("socket"),
        host=info.get("host") or "localhost",
        use_ssl=bool(info.get("use_ssl", False)),
    )
    try:
        answer = client.can_cancel_execution(
            CanCancelExecutionRequest(run_id=run_id), timeout=HEALTH_QUERY_TIMEOUT_SECONDS
        )
    except DagsterUserCodeUnreachableError as exc:
        cause = exc.__cause__
        code = cause.code() if isinstance(cause, grpc.RpcError) else None  # type: ignore[attr-defined]
        if code == grpc.StatusCode.UNAVAILABLE:  # refused: nothing listens there
            result = CheckRunHealthResult(
                WorkerStatus.FAILED,
                f"code server {where} unreachable: the server that launched it is gone",
            )
        else:  # too slow to answer
            result = CheckRunHealthResult(
                WorkerStatus.RUNNING,
                f"cannot tell: code server {where} unreachable, it did not answer ({exc})",
                transient=True,
            )
        return _Probe(result, unreachable=True)
    if deserialize_value(answer, CanCancelExecutionResult).can_cancel:
        return _Probe(
            CheckRunHealthResult(WorkerStatus.RUNNING, f"its process on {where} is alive")
        )
    return _Probe(
        CheckRunHealthResult(
            WorkerStatus.NOT_FOUND,
            f"code server {where} is not executing this run: it restarted, or the run's "
            "process died, without recording an end",
        )
    )


def _probe(run: DagsterRun) -> _Probe:
    tags = run.tags
    if GRPC_INFO_TAG in tags:
        return _grpc_probe(run.run_id, json.loads(tags[GRPC_INFO_TAG]))
    if RUN_WORKER_TAG in tags:
        host, _, pid = tags[RUN_WORKER_TAG].rpartition(":")
        if host != socket.gethostname() or not pid.isdigit():
            return _Probe(
                CheckRunHealthResult(
                    WorkerStatus.RUNNING, f"cannot tell: its process runs on {host}", True
                )
            )
        if _pid_alive(int(pid)):
            return _Probe(CheckRunHealthResult(WorkerStatus.RUNNING, f"process {pid} is alive"))
        return _Probe(CheckRunHealthResult(WorkerStatus.FAILED, f"process {pid} on {host} is gone"))
    # launched some other way: nothing to ask, so never failed from here
    return _Probe(
        CheckRunHealthResult(WorkerStatus.RUNNING, "cannot tell: no worker recorded", True)
    )


def run_worker_health(run: DagsterRun) -> CheckRunHealthResult:
    """Whether the process executing ``run`` is alive, as far as one query can tell.

    * launched through a code server (its ``dagster/grpc_info`` tag): RUNNING while that
      server holds a live process for the run (the gRPC ``CanCancelExecution`` call, which
      works across containers); NOT_FOUND when it holds none (the worker died, or the
      server restarted); FAILED when the server refuses the connection; RUNNING ("cannot
      tell") when it answers too slowly.
    * executed in a process of its own (:data:`RUN_WORKER_TAG`): alive while that process
      is, when asked on the same host; "cannot tell" on another.

    Without the launcher's grace period: the check alerts use this to tell a dead run's
    planned check from one still running.
    """
    return _probe(run).result


class WatchedRunLauncher(DefaultRunLauncher):
    """Runs as subprocesses of the code server, with a health check for run monitoring.

    The answer is :func:`run_worker_health`'s, except for a code server that cannot be
    reached: the run counts as running for ``unreachable_grace_seconds``
    (:data:`UNREACHABLE_GRACE_SECONDS` by default) since the first such answer, a network
    blip must not fail a healthy run; then it is failed. Dagster fails a run on any status
    but RUNNING and SUCCESS; the instance's ``max_runtime_seconds`` remains the backstop for
    "cannot tell". The Kubernetes run launcher has a health check of its own
    (``deploy/k8s``).
    """

    def __init__(
        self,
        inst_data: ConfigurableClassData | None = None,
        unreachable_grace_seconds: float = UNREACHABLE_GRACE_SECONDS,
    ):
        super().__init__(inst_data=inst_data)
        self.unreachable_grace_seconds = float(unreachable_grace_seconds)
        self._unreachable_since: dict[str, float] = {}

    @classmethod
    @override
    def config_type(cls) -> Any:
        return {
            "unreachable_grace_seconds": Field(
                float, is_required=False, default_value=UNREACHABLE_GRACE_SECONDS
            )
        }

    @classmethod
    @override
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> Self:
        grace = config_value.get("unreachable_grace_seconds", UNREACHABLE_GRACE_SECONDS)
        return cls(inst_data=inst_data, unreachable_grace_seconds=grace)

    @property
    @override
    def supports_check_run_worker_health(self) -> bool:
        return True

    @override
    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        probe = _probe(run)
        if not probe.unreachable:
            self._unreachable_since.pop(run.run_id, None)
            return probe.result
        first = self._unreachable_since.setdefault(run.run_id, time.monotonic())
        waited = time.monotonic() - first
        if waited < self.unreachable_grace_seconds:
            return CheckRunHealthResult(
                WorkerStatus.RUNNING,
                f"{probe.result.msg}; unreachable for {waited:.0f} s, waiting",
                transient=True,
            )
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"{probe.result.msg}; unreachable for {waited:.0f} s: the run is lost",
        )


class _CheckedPool:
    """A PostgreSQL store whose webserver pool tries each connection before handing it out."""

    _engine: Any

    def optimize_for_webserver(
        self, statement_timeout: int, pool_recycle: int, max_overflow: int
    ) -> None:
        from sqlalchemy import event

        super().optimize_for_webserver(statement_timeout, pool_recycle, max_overflow)  # type: ignore[misc]
        event.listen(self._engine, "checkout", _ping_on_checkout)


class _RunStorage(_CheckedPool, PostgresRunStorage):
    pass


class _EventLogStorage(_CheckedPool, PostgresEventLogStorage):
    pass


class _ScheduleStorage(_CheckedPool, PostgresScheduleStorage):
    pass


class ReconnectingPostgresStorage(DagsterPostgresStorage):
    """Dagster's PostgreSQL storage; every pooled connection is tried before it is used.

    Outside the webserver Dagster opens a connection per use (no pool), which survives a
    restart anyway, and run workers get the stock classes (the instance hands them
    ``dagster_postgres``'s own). The webserver keeps a pool per store
    (``optimize_for_webserver``); here each checkout first runs ``SELECT 1``, and a dead
    connection is replaced before the request sees it (SQLAlchemy's documented
    ``checkout`` event with ``DisconnectionError``). Configured like ``storage: postgres:``.
    """

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: Any = None,
    ):
        # DagsterPostgresStorage.__init__ with the three stores swapped for checked ones.
        self.postgres_url = postgres_url
        self.should_autocreate_tables = should_autocreate_tables
        self._inst_data = inst_data
        self._run_storage = _RunStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        self._event_log_storage = _EventLogStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        self._schedule_storage = _ScheduleStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        super(DagsterPostgresStorage, self).__init__()

    @classmethod
    @override
    def from_config_value(  # ty: ignore[invalid-method-override]
        cls, inst_data: ConfigurableClassData | None, config_value: Any
    ) -> ReconnectingPostgresStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )


def _ping_on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Raise ``DisconnectionError`` for a dead connection: the pool then connects anew."""
    import psycopg2
    from sqlalchemy.exc import DisconnectionError

    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
        raise DisconnectionError(f"pooled connection is dead: {exc}".strip()) from exc
