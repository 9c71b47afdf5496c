"""Validation lanes by size: a busy bulk lane does not hold up a batch-sized body, and the
bulk lane's process yields the CPU (real spawned processes, no timing)."""

from __future__ import annotations

import asyncio
import json
import os

from airquality_assets.serving.gate import Parser
from airquality_assets.serving.lanes import BULK_NICE, MAX_DEMOTED, SizeLanes
from airquality_assets.serving.request import RequestError, RequestSpec, ValidatedRequest
from airquality_assets.transforms.features import default_feature_names

from .conftest import LOOKBACK, TARGETS, make_body

SPEC = RequestSpec.for_features(default_feature_names(list(TARGETS)), LOOKBACK)
ONE = json.dumps(make_body(("beijing",))).encode()  # a few KB
#: A guard against a hang (the test would otherwise wait forever), not a speed limit.
GUARD_S = 300


def test_bodies_go_to_the_lane_of_their_size() -> None:
    lanes = SizeLanes(batch_bytes=100_000)
    assert lanes.lane_for(20_000) is lanes.batch
    assert lanes.lane_for(100_000) is lanes.batch
    assert lanes.lane_for(100_001) is lanes.bulk
    assert lanes.lane_for(999_000) is lanes.bulk


def test_a_batch_body_is_validated_while_the_bulk_lane_is_busy() -> None:
    parser = Parser(SPEC, inline_bytes=1_000, batch_bytes=len(ONE) + 10)
    junk = b"{" + b",".join(b'"junk-%d": %d' % (i, i) for i in range(8_000)) + b"}"
    assert parser.lanes.lane_for(len(junk)) is parser.lanes.bulk

    async def scenario() -> tuple[ValidatedRequest, int, bool]:
        release = asyncio.Event()

        async def hold() -> None:  # a bulk body being validated, for as long as we say
            await release.wait()

        busy = asyncio.create_task(parser.lanes.bulk.queue.run("junk-1", len(junk), hold))
        queued = asyncio.create_task(parser.parse(junk, "junk-2"))  # waits behind it
        await asyncio.sleep(0)
        validated = await asyncio.wait_for(parser.parse(ONE, "batch"), GUARD_S)
        still_busy = not busy.done() and not queued.done()
        waiting = parser.lanes.bulk.queue.waiting
        release.set()
        await busy
        try:
            await queued
        except RequestError as error:  # the junk is refused once its turn comes
            assert error.status == 422
        else:
            raise AssertionError("junk accepted")
        return validated, waiting, still_busy

    try:
        validated, waiting, still_busy = asyncio.run(scenario())
    finally:
        parser.close()
    assert validated.locations == ["beijing"]
    assert still_busy and waiting == 1  # the bulk lane was busy with a queue the whole time


def test_the_bulk_lane_runs_at_a_lower_cpu_priority() -> None:
    lanes = SizeLanes(batch_bytes=100_000)
    ours = os.nice(0)

    async def niceness() -> tuple[int, int]:
        batch = await lanes.batch.run(None, 1, os.nice, 0)
        bulk = await lanes.bulk.run(None, 1, os.nice, 0)
        return batch, bulk

    try:
        batch, bulk = asyncio.run(niceness())
    finally:
        lanes.close()
    assert batch == ours
    assert bulk == min(19, ours + BULK_NICE)


def test_a_dead_lane_process_is_replaced() -> None:
    lanes = SizeLanes(batch_bytes=100_000)

    async def twice() -> tuple[int, int]:
        first = await lanes.batch.run(None, 1, os.getpid)
        lanes.batch.executor().submit(os._exit, 1).exception()  # the process dies
        second = await lanes.batch.run(None, 1, os.getpid)
        return first, second

    try:
        first, second = asyncio.run(twice())
    finally:
        lanes.close()
    assert first != second and second != os.getpid()


def test_a_connection_that_sent_junk_is_validated_in_the_bulk_lane_until_a_valid_body() -> None:
    parser = Parser(SPEC, inline_bytes=1_000, batch_bytes=100_000)
    lanes = parser.lanes
    bad = ONE.replace(b'"temp"', b'"tmp"')  # batch-sized, refused (unknown field)

    async def scenario() -> list[str]:
        seen = []
        for body in (ONE, bad, bad, ONE, ONE):
            seen.append(lanes.lane_for(len(body), "client-1").name)
            try:
                await parser.parse(body, "client-1")
            except RequestError as error:
                assert error.status == 422
        seen.append(lanes.lane_for(len(bad), "client-2").name)  # another connection
        return seen

    try:
        seen = asyncio.run(scenario())
    finally:
        parser.close()
    assert seen == ["batch", "batch", "bulk", "bulk", "batch", "batch"]


def test_demoted_connections_are_bounded_and_an_unknown_flow_is_never_demoted() -> None:
    lanes = SizeLanes(batch_bytes=100_000)
    lanes.judged(None, valid=False)
    assert lanes.lane_for(10_000, None) is lanes.batch
    for i in range(MAX_DEMOTED + 1):
        lanes.judged(("127.0.0.1", i), valid=False)
    assert lanes.lane_for(10_000, ("127.0.0.1", 0)) is lanes.batch  # the oldest, forgotten
    assert lanes.lane_for(10_000, ("127.0.0.1", MAX_DEMOTED)) is lanes.bulk
