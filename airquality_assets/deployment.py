"""The production instance's own classes (``deploy/dagster.yaml``): what Dagster's stock
ones lack on a stack of long-lived containers.

* :class:`CodeServerRunLauncher`: Dagster's default launcher (each run a subprocess of the
  code server) plus a run-worker health check, so run monitoring can fail a run whose code
  server died: the stock launcher has none, and such a run stayed STARTED for good, holding
  one of the queue's slots (terminating it failed with "Could not find a server for run").
* :class:`ReconnectingPostgresStorage`: Dagster's PostgreSQL storage whose pooled
  connections (the webserver keeps one per store) are checked before use, so a database
  restart costs no failed request; the stock pool handed out the dead connection and the
  webserver answered 500 ("server closed the connection unexpectedly").

Only Dagster and its PostgreSQL library are imported: the webserver and the daemon load
this module with the instance, before and apart from the code location.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Self

from dagster import DefaultRunLauncher
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

#: How long a run's code server may be unreachable before the run counts as dead: longer
#: than a container restart (the server is back, without the run, within a minute), short
#: enough that a slot is not held for long by a server that never comes back.
UNREACHABLE_GRACE_SECONDS = 300.0
#: Seconds one health query may take (the daemon checks every started run in turn).
HEALTH_QUERY_TIMEOUT_SECONDS = 10


class CodeServerRunLauncher(DefaultRunLauncher):
    """Runs as subprocesses of the code server, with a health check for run monitoring.

    The run's code server (its address is in the run's ``GRPC_INFO_TAG``) is asked whether it
    is executing the run. A server that answers "no" while the run is STARTED has lost it (it
    restarted, or the run's process died): the run is reported dead and run monitoring marks
    it failed. A server that does not answer is given :data:`UNREACHABLE_GRACE_SECONDS`
    first: a network blip must not fail a healthy run.
    """

    def __init__(self, inst_data: ConfigurableClassData | None = None):
        super().__init__(inst_data=inst_data)
        self._unreachable_since: dict[str, float] = {}

    @classmethod
    @override
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> Self:
        return cls(inst_data=inst_data)

    @property
    @override
    def supports_check_run_worker_health(self) -> bool:
        return True

    @override
    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        from dagster._grpc.client import DagsterGrpcClient
        from dagster._grpc.types import CanCancelExecutionRequest, CanCancelExecutionResult
        from dagster._serdes import deserialize_value

        info = run.tags.get(GRPC_INFO_TAG)
        if not info:  # launched some other way: nothing to ask, so never failed from here
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no code server recorded", True)
        address = json.loads(info)
        where = f"{address.get('host')}:{address.get('port') or address.get('socket')}"
        client = DagsterGrpcClient(
            port=address.get("port"),
            socket=address.get("socket"),
            host=address.get("host"),
            use_ssl=bool(address.get("use_ssl", False)),
        )
        try:
            reply = client.can_cancel_execution(
                CanCancelExecutionRequest(run_id=run.run_id),
                timeout=HEALTH_QUERY_TIMEOUT_SECONDS,
            )
        except Exception as exc:  # unreachable: down, restarting, or a blip
            first = self._unreachable_since.setdefault(run.run_id, time.monotonic())
            waited = time.monotonic() - first
            if waited < UNREACHABLE_GRACE_SECONDS:
                return CheckRunHealthResult(
                    WorkerStatus.RUNNING,
                    f"code server {where} unreachable for {waited:.0f} s ({exc}); waiting",
                    transient=True,
                )
            return CheckRunHealthResult(
                WorkerStatus.FAILED,
                f"code server {where} unreachable for {waited:.0f} s: the run is lost",
            )
        self._unreachable_since.pop(run.run_id, None)
        if deserialize_value(reply, CanCancelExecutionResult).can_cancel:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(
            WorkerStatus.NOT_FOUND,
            f"code server {where} is not executing this run: it restarted, or the run's "
            "process died, without recording an end",
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
