"""The Dagster webserver's GraphQL API, as a team operates the stack through it (the UI's
own calls): backfills, runs, sensors, run status. Every HTTP answer is recorded, so the
stack test can say how many requests it made and that none was a 5xx.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

LOCATION = "airquality_assets"
REPOSITORY = "__repository__"


class GraphQLError(RuntimeError):
    pass


class DagsterWebserver:
    def __init__(self, url: str):
        self.url = url.rstrip("/") + "/graphql"
        self.statuses: Counter[int] = Counter()
        self.server_errors: list[str] = []

    def query(self, text: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": text, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            self.url, body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                self.statuses[response.status] += 1
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            self.statuses[exc.code] += 1
            detail = exc.read().decode(errors="replace")[:300]
            if exc.code >= 500:
                self.server_errors.append(f"{time.strftime('%H:%M:%S')} {exc.code}: {detail}")
            raise GraphQLError(f"HTTP {exc.code}: {detail}") from exc
        if answer.get("errors"):
            raise GraphQLError(json.dumps(answer["errors"])[:1000])
        return answer["data"]

    # -- operations ----------------------------------------------------------------------
    def launch_backfill(
        self,
        assets: list[str],
        partitions: list[str],
        title: str,
        tags: dict[str, str] | None = None,
    ) -> str:
        data = self.query(
            """mutation($params: LaunchBackfillParams!) {
              launchPartitionBackfill(backfillParams: $params) {
                __typename
                ... on LaunchBackfillSuccess { backfillId }
                ... on PythonError { message }
                ... on InvalidSubsetError { message }
                ... on PartitionSetNotFoundError { message }
                ... on UnauthorizedError { message }
              }
            }""",
            {
                "params": {
                    "assetSelection": [{"path": [a]} for a in assets],
                    "partitionNames": partitions,
                    "title": title,
                    "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()],
                }
            },
        )["launchPartitionBackfill"]
        if data["__typename"] != "LaunchBackfillSuccess":
            raise GraphQLError(f"backfill not launched: {data}")
        return data["backfillId"]

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        return self.query(
            """query($id: String!) {
              partitionBackfillOrError(backfillId: $id) {
                __typename
                ... on PartitionBackfill { id status runs: runs(limit: 50) { runId status } }
                ... on PythonError { message }
              }
            }""",
            {"id": backfill_id},
        )["partitionBackfillOrError"]

    def launch_run(
        self,
        job: str,
        run_config: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        data = self.query(
            """mutation($params: ExecutionParams!) {
              launchRun(executionParams: $params) {
                __typename
                ... on LaunchRunSuccess { run { runId } }
                ... on PythonError { message }
                ... on RunConfigValidationInvalid { errors { message } }
                ... on InvalidSubsetError { message }
                ... on UnauthorizedError { message }
              }
            }""",
            {
                "params": {
                    "selector": {
                        "repositoryLocationName": LOCATION,
                        "repositoryName": REPOSITORY,
                        "jobName": job,
                    },
                    "runConfigData": run_config or {},
                    "executionMetadata": {
                        "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]
                    },
                }
            },
        )["launchRun"]
        if data["__typename"] != "LaunchRunSuccess":
            raise GraphQLError(f"run not launched: {data}")
        return data["run"]["runId"]

    def run(self, run_id: str) -> dict[str, Any]:
        data = self.query(
            """query($id: ID!) {
              runOrError(runId: $id) {
                __typename
                ... on Run { runId status jobName startTime endTime tags { key value } }
                ... on RunNotFoundError { message }
                ... on PythonError { message }
              }
            }""",
            {"id": run_id},
        )["runOrError"]
        if data["__typename"] != "Run":
            raise GraphQLError(f"run {run_id}: {data}")
        return data

    def runs(self, statuses: list[str] | None = None, limit: int = 100) -> list[dict[str, Any]]:
        data = self.query(
            """query($filter: RunsFilter, $limit: Int) {
              runsOrError(filter: $filter, limit: $limit) {
                __typename
                ... on Runs { results { runId status jobName tags { key value } } }
                ... on PythonError { message }
              }
            }""",
            {"filter": {"statuses": statuses} if statuses else {}, "limit": limit},
        )["runsOrError"]
        if data["__typename"] != "Runs":
            raise GraphQLError(f"runs: {data}")
        return data["results"]

    def run_events(self, run_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        data = self.query(
            """query($id: ID!, $limit: Int) {
              logsForRun(runId: $id, limit: $limit) {
                __typename
                ... on EventConnection {
                  events { __typename ... on MessageEvent { message timestamp } }
                }
                ... on PythonError { message }
              }
            }""",
            {"id": run_id, "limit": limit},
        )["logsForRun"]
        return data.get("events", [])

    def start_sensor(self, name: str) -> str:
        data = self.query(
            """mutation($selector: SensorSelector!) {
              startSensor(sensorSelector: $selector) {
                __typename
                ... on Sensor { sensorState { status } }
                ... on PythonError { message }
                ... on SensorNotFoundError { message }
                ... on UnauthorizedError { message }
              }
            }""",
            {
                "selector": {
                    "repositoryLocationName": LOCATION,
                    "repositoryName": REPOSITORY,
                    "sensorName": name,
                }
            },
        )["startSensor"]
        if data["__typename"] != "Sensor":
            raise GraphQLError(f"sensor {name} not started: {data}")
        return data["sensorState"]["status"]

    def asset_partitions_materialized(self, asset: str) -> list[str]:
        data = self.query(
            """query($key: AssetKeyInput!) {
              assetNodeOrError(assetKey: $key) {
                __typename
                ... on AssetNode { assetPartitionStatuses { __typename
                  ... on MultiPartitionStatuses { ranges { primaryDimStartKey primaryDimEndKey
                    secondaryDim { __typename ... on DefaultPartitionStatuses {
                      materializedPartitions } } } }
                  ... on DefaultPartitionStatuses { materializedPartitions } } }
              }
            }""",
            {"key": {"path": [asset]}},
        )["assetNodeOrError"]
        statuses = data.get("assetPartitionStatuses") or {}
        if statuses.get("__typename") == "DefaultPartitionStatuses":
            return statuses["materializedPartitions"]
        found = []
        for span in statuses.get("ranges", []):
            secondary = span["secondaryDim"].get("materializedPartitions", [])
            found.append(f"{span['primaryDimStartKey']}..{span['primaryDimEndKey']}:{secondary}")
        return found

    def wait_run(self, run_id: str, timeout: float, poll: float = 3.0) -> dict[str, Any]:
        """The run once it has ended (SUCCESS, FAILURE or CANCELED)."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                last = self.run(run_id)
            except GraphQLError:
                time.sleep(poll)
                continue
            if last["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
                return last
            time.sleep(poll)
        raise TimeoutError(f"run {run_id} still {last.get('status')} after {timeout:.0f} s")
