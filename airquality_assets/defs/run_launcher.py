"""Runs whose process died are seen: Dagster's default run launcher plus a worker health check.

Dagster's run monitoring (the daemon) marks a run FAILED when its launcher reports the run
worker gone, but ``DefaultRunLauncher`` (a run is a subprocess of the code server) reports
nothing: a SIGKILLed run, or one whose code server died, stayed STARTED for ever, held a
queue slot and kept its planned checks open. :class:`WatchedRunLauncher` launches exactly
as the default does and answers the health check:

* a run launched through a code server (its ``dagster/grpc_info`` tag) is alive while that
  server still holds a live process for it (the gRPC ``CanCancelExecution`` call, which
  works across containers). A server that refuses the connection, or holds no process for
  the run, means the worker is gone. A server that answers too slowly is "cannot tell".
* a run executed in a process of its own (the demo, the simulation: tag
  :data:`RUN_WORKER_TAG`, ``<host>:<pid>``) is alive while that process is, when the daemon
  runs on the same host; on another host it cannot tell.

"Cannot tell" is reported as running (Dagster fails a run on any other answer); the
instance's ``max_runtime_seconds`` remains the backstop. Both instance files
(``dagster.yaml``, ``deploy/dagster.yaml``) name this launcher and turn run monitoring on.
The Kubernetes run launcher has a health check of its own (``deploy/k8s``).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from typing import Any

from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.launcher.default_run_launcher import DefaultRunLauncher
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.storage.tags import GRPC_INFO_TAG
from typing_extensions import override

#: ``<host>:<pid>`` of the process executing a run that no code server launched.
RUN_WORKER_TAG = "airquality/run_worker"
GRPC_TIMEOUT_S = 10


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


def _grpc_health(run_id: str, info: Mapping[str, Any]) -> CheckRunHealthResult:
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
            CanCancelExecutionRequest(run_id=run_id), timeout=GRPC_TIMEOUT_S
        )
    except DagsterUserCodeUnreachableError as exc:
        cause = exc.__cause__
        code = cause.code() if isinstance(cause, grpc.RpcError) else None  # type: ignore[attr-defined]
        if code == grpc.StatusCode.UNAVAILABLE:
            return CheckRunHealthResult(
                WorkerStatus.FAILED, f"the code server that launched it ({where}) is gone"
            )
        return CheckRunHealthResult(
            WorkerStatus.RUNNING, f"cannot tell: code server {where} did not answer ({exc})"
        )
    if deserialize_value(answer, CanCancelExecutionResult).can_cancel:
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"its process on {where} is alive")
    return CheckRunHealthResult(
        WorkerStatus.FAILED,
        f"code server {where} holds no process for it (the run worker died, or the server "
        "was restarted)",
    )


def run_worker_health(run: DagsterRun) -> CheckRunHealthResult:
    """Whether the process executing ``run`` is alive, as far as can be told from here."""
    tags = run.tags
    if GRPC_INFO_TAG in tags:
        return _grpc_health(run.run_id, json.loads(tags[GRPC_INFO_TAG]))
    if RUN_WORKER_TAG in tags:
        host, _, pid = tags[RUN_WORKER_TAG].rpartition(":")
        if host != socket.gethostname() or not pid.isdigit():
            return CheckRunHealthResult(
                WorkerStatus.RUNNING, f"cannot tell: its process runs on {host}"
            )
        if _pid_alive(int(pid)):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"process {pid} is alive")
        return CheckRunHealthResult(WorkerStatus.FAILED, f"process {pid} on {host} is gone")
    return CheckRunHealthResult(WorkerStatus.RUNNING, "cannot tell: no worker recorded")


class WatchedRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` with a run worker health check (see the module docstring)."""

    @property
    @override
    def supports_check_run_worker_health(self) -> bool:
        return True

    @override
    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        return run_worker_health(run)
