"""Bodies take turns in the validation process by size per connection, not by arrival."""

from __future__ import annotations

import asyncio

from airquality_assets.serving.fairness import FairQueue

JUNK, BATCH = 1_000_000, 24_000


async def _scenario(queue: FairQueue, arrivals: list[tuple[str, int]]) -> list[str]:
    """The first arrival holds the slot until every other one is queued; returns the order
    in which jobs ran."""
    order: list[str] = []
    release = asyncio.Event()

    def job(name: str, hold: bool):
        async def run() -> str:
            order.append(name)
            if hold:
                await release.wait()
            return name

        return run

    tasks = []
    for i, (name, cost) in enumerate(arrivals):
        flow = name.rstrip("0123456789")
        tasks.append(asyncio.create_task(queue.run(flow, cost, job(name, i == 0))))
        await asyncio.sleep(0)  # arrive in this order
    release.set()
    assert [await t for t in tasks] == [name for name, _ in arrivals]
    return order


def test_a_batch_client_does_not_wait_behind_queued_junk() -> None:
    arrivals = [("junk1", JUNK), ("junk2", JUNK), ("junk3", JUNK), ("batch1", BATCH)]
    arrivals += [("batch2", BATCH), ("other1", JUNK)]
    order = asyncio.run(_scenario(FairQueue(), arrivals))
    # FIFO would be junk1..3 then batch; fair: after the running junk body, the batch
    # client (charged 24 KB a body) and a new flow go before junk's queued ones.
    assert order == ["junk1", "batch1", "other1", "batch2", "junk2", "junk3"]


def test_equal_flows_alternate() -> None:
    arrivals = [("a1", JUNK), ("a2", JUNK), ("a3", JUNK), ("b1", JUNK), ("b2", JUNK)]
    order = asyncio.run(_scenario(FairQueue(), arrivals))
    assert order == ["a1", "b1", "a2", "b2", "a3"]


def test_a_cancelled_waiter_gives_its_turn_away() -> None:
    async def scenario() -> list[str]:
        queue, order, release = FairQueue(), [], asyncio.Event()

        async def hold() -> None:
            order.append("first")
            await release.wait()

        async def note(name: str) -> None:
            order.append(name)

        first = asyncio.create_task(queue.run("a", JUNK, hold))
        await asyncio.sleep(0)
        gone = asyncio.create_task(queue.run("b", BATCH, lambda: note("gone")))
        kept = asyncio.create_task(queue.run("c", BATCH, lambda: note("kept")))
        await asyncio.sleep(0)
        gone.cancel()
        release.set()
        await first
        await kept
        assert gone.cancelled() and queue.waiting == 0
        await queue.run("d", 1, lambda: note("after"))  # the slot was handed back
        return order

    assert asyncio.run(scenario()) == ["first", "kept", "after"]
