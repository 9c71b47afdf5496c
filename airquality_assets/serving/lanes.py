"""Validation lanes by body size: a flood of large bodies cannot hold up batch-sized ones.

Bodies over the inline limit used to share one validation process. Fair turns
(:mod:`airquality_assets.serving.fairness`) kept junk from queueing ahead of a batch client,
but its 24 KB body still waited for the 1 MB body being parsed (~30-80 ms) and competed with
a process that the junk kept busy on one of the two cores: a 4-location client kept 0.09 of
its idle rate under 2 junk clients. So each size class has its own lane: its own process and
its own fair queue. A body up to ``batch_bytes`` (about 20 locations) never waits behind a
larger one, and within a lane it waits for at most one body of its class. The bulk lane's
process also runs at a lower CPU priority (``bulk_nice``): a flood of near-limit bodies gets
the cycles left over, not a share taken from the event loop and the batch lane; a legitimate
bulk request is slower only while the machine is busy.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable, Hashable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, TypeVar

from airquality_assets.serving.fairness import FairQueue

T = TypeVar("T")
#: Niceness added to the bulk lane's process (Linux: weight ~1/10 of a normal process).
BULK_NICE = 10


def _lower_priority(increment: int) -> None:  # the process initializer: top level, picklable
    if increment:
        os.nice(increment)


@dataclass
class Lane:
    """One validation process and the fair queue in front of it."""

    name: str
    nice: int = 0
    queue: FairQueue = field(default_factory=lambda: FairQueue(slots=1))
    _pool: ProcessPoolExecutor | None = None

    def executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")  # never fork a process running XLA
            self._pool = ProcessPoolExecutor(
                1, mp_context=context, initializer=_lower_priority, initargs=(self.nice,)
            )
        return self._pool

    async def run(self, flow: Hashable, cost: int, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in this lane's process when ``flow``'s fair turn comes."""
        return await self.queue.run(flow, cost, lambda: self._call(fn, *args))

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor(), fn, *args)
        except BrokenProcessPool:  # the process died (e.g. killed): start another, once
            self._pool = None
            return await loop.run_in_executor(self.executor(), fn, *args)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class SizeLanes:
    """A ``batch`` lane for bodies up to ``batch_bytes`` and a ``bulk`` lane for the rest."""

    def __init__(self, batch_bytes: int, bulk_nice: int = BULK_NICE) -> None:
        self.batch_bytes = batch_bytes
        self.batch = Lane("batch")
        self.bulk = Lane("bulk", nice=bulk_nice)

    def lane_for(self, size: int) -> Lane:
        return self.batch if size <= self.batch_bytes else self.bulk

    def warm_up(self, fn: Callable[..., Any], *args: Any) -> None:
        """Start both processes and wait until each has run ``fn(*args)`` (its imports)."""
        futures = [lane.executor().submit(fn, *args) for lane in (self.batch, self.bulk)]
        for future in futures:
            future.exception()

    def close(self) -> None:
        self.batch.close()
        self.bulk.close()
