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

Junk sized for the batch lane (120 KB) still cost a batch client more than half its rate
(0.45 of idle): it shared the lane's process with every junk body. So a connection whose
last body was refused has its next ones validated in the bulk lane, until one is valid:
a client that keeps sending junk on a kept-alive connection gets the left-over cycles,
whatever the size of its bodies. (A client that reconnects for each body escapes this; it
then pays for a connection per body.)
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, TypeVar

from airquality_assets.serving.fairness import FairQueue

T = TypeVar("T")
#: Niceness added to the bulk lane's process (Linux: weight ~1/10 of a normal process).
BULK_NICE = 10
#: Connections remembered as having sent a refused body (the oldest forgotten first).
MAX_DEMOTED = 4_096


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
        self._demoted: OrderedDict[Hashable, None] = OrderedDict()

    def lane_for(self, size: int, flow: Hashable = None) -> Lane:
        """The bulk lane for a large body, or any body of a flow whose last was refused."""
        if size > self.batch_bytes or (flow is not None and flow in self._demoted):
            return self.bulk
        return self.batch

    def judged(self, flow: Hashable, valid: bool) -> None:
        """Remember whether ``flow``'s latest body was valid (an unknown flow: nothing)."""
        if flow is None:
            return
        if valid:
            self._demoted.pop(flow, None)
            return
        self._demoted[flow] = None
        self._demoted.move_to_end(flow)
        if len(self._demoted) > MAX_DEMOTED:
            self._demoted.popitem(last=False)

    def warm_up(self, fn: Callable[..., Any], *args: Any) -> None:
        """Start both processes and wait until each has run ``fn(*args)`` (its imports)."""
        futures = [lane.executor().submit(fn, *args) for lane in (self.batch, self.bulk)]
        for future in futures:
            future.exception()

    def close(self) -> None:
        self.batch.close()
        self.bulk.close()
