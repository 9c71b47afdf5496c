"""Fair sharing of the validation process: a junk flood cannot starve a batch client.

Bodies over the inline limit are validated in one separate process. In the order they came
(the executor's FIFO), two clients sending ~1 MB junk non-stop kept it busy, and a client
sending 4 locations (~24 KB, just over the inline limit) waited behind their bodies: 51 ->
6 requests/s. :class:`FairQueue` hands the process to waiting bodies by start-time fair
queuing over their size: each flow (a client connection) has a virtual clock that advances
by the bytes it has had validated, and the body with the earliest start tag goes next. A
flow sending 1 MB bodies is charged 1 MB per body, a batch client 24 KB, so the batch
client's next body is served before the junk flow's next one: it waits for the body being
validated, not for a queue of junk. A flow is a connection, not an address: behind a proxy,
or in a local benchmark, every client has the same address. Measured
(``benchmarks/serving/fairness.py``), this alone did not keep a batch client at half its
idle rate under 2 junk clients (it still waited for the junk body being validated), so
each size class now has a queue and a process of its own (:mod:`.lanes`).
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

T = TypeVar("T")
#: Flows whose clock has fallen behind the queue's are forgotten beyond this many.
MAX_FLOWS = 4_096


class FairQueue:
    """At most ``slots`` jobs run at once; the next is the one with the earliest start tag."""

    def __init__(self, slots: int = 1) -> None:
        self.slots = slots
        self._running = 0
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []
        self._sequence = 0
        self._clock = 0.0  # start tag of the job most recently started
        self._finish: dict[Hashable, float] = {}

    def _tag(self, flow: Hashable, cost: float) -> float:
        start = max(self._clock, self._finish.get(flow, 0.0))
        self._finish[flow] = start + cost
        if len(self._finish) > MAX_FLOWS:  # drop flows that are idle: their tag is the clock
            self._finish = {f: t for f, t in self._finish.items() if t > self._clock}
        return start

    async def run(self, flow: Hashable, cost: float, job: Callable[[], Awaitable[T]]) -> T:
        """Run ``job()`` when its turn comes; ``cost`` is what the flow is charged (bytes)."""
        start = self._tag(flow, cost)
        if self._running >= self.slots or self._waiting:
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (start, self._sequence, turn))
            self._sequence += 1
            try:
                await turn  # the slot is counted as ours once this resolves
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._release()  # given the slot just as the client went away
                raise
        else:
            self._running += 1
            self._clock = start
        try:
            return await job()
        finally:
            self._release()

    def _release(self) -> None:
        self._running -= 1
        while self._waiting and self._running < self.slots:
            start, _, turn = heapq.heappop(self._waiting)
            if turn.done():  # its client went away while it waited
                continue
            self._running += 1
            self._clock = start
            turn.set_result(None)

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, turn in self._waiting if not turn.done())
