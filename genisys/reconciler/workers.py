"""The loops that drive reconcile passes: the workers and the resync timer.

A worker takes a service name from the work queue, runs one pass, and puts the
name back when the pass asks to be looked at again (a progress check, a
backoff) or, after a failed pass, after the queue's own backoff. The resync
timer queues every service every ``poll_interval``: a lost wake-up or a crash
costs latency, never correctness.

The API answers first (``PassGate``): the passes and the API share one event
loop, and while the API answers many requests at once, fewer passes run at
once. Services then wait in the queue, where the changes that come meanwhile
add up: one pass takes several upscales of a service to its connector, and the
CPU left goes to the answers (docs/concepts.md, "The API answers first").
"""

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Optional

from genisys.errors import GenisysError
from genisys.metrics import Metrics
from genisys.reconciler.queue import QueueClosed, WorkQueue

log = logging.getLogger(__name__)

#: Requests being answered at once (streams left out) from which the API is busy.
BUSY = 16
#: Seconds between two looks at the API.
TICK = 0.05
#: The passes that always may run at once, however busy the API.
FLOOR = 16


class PassGate:
    """How many passes may run at once: every worker's, unless the API is busy.

    Looked at every ``TICK`` seconds: while ``answering()`` (the API's requests
    being answered, streams left out) is ``busy`` or more, the passes allowed
    are halved, down to ``floor``; otherwise they grow by ``floor``, up to
    ``ceiling`` (halving at once and growing slowly, so that an API busy on and
    off does not swing them from one end to the other). A worker waits for its
    turn before it takes a service from the queue, so the services that wait
    stay in the queue, where the changes made meanwhile are coalesced."""

    def __init__(self, ceiling: int, *, answering: Callable[[], int], floor: int = FLOOR,
                 busy: int = BUSY, on_look: Optional[Callable[[int], None]] = None) -> None:
        self.ceiling = ceiling
        self.floor = min(floor, ceiling)
        self.allowed = ceiling
        self.busy = busy
        self.running = 0
        self._answering = answering
        #: Told the passes allowed at every look: the metrics.
        self._on_look = on_look
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._timer: Optional[asyncio.TimerHandle] = None

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(TICK, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self.look()
        self._timer = asyncio.get_running_loop().call_later(TICK, self._tick)

    def look(self) -> None:
        """Halve the passes allowed, or let ``floor`` more run."""
        if self._answering() >= self.busy:
            allowed = max(self.floor, self.allowed // 2)
        else:
            allowed = min(self.ceiling, self.allowed + self.floor)
        if allowed != self.allowed:
            self.allowed = allowed
            self._hand_on()
        if self._on_look is not None:
            self._on_look(allowed)

    async def acquire(self) -> None:
        if not self._waiting and self.running < self.allowed:
            self.running += 1
            return
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # handed a turn just as the worker was stopped
            elif turn in self._waiting:  # (_hand_on may have passed it over already)
                self._waiting.remove(turn)
            raise

    def release(self) -> None:
        self.running -= 1
        self._hand_on()

    def _hand_on(self) -> None:
        while self._waiting and self.running < self.allowed:
            turn = self._waiting.popleft()
            if not turn.done():
                self.running += 1
                turn.set_result(None)


async def worker(queue: WorkQueue, reconcile: Callable[[str], Awaitable[Optional[float]]], *,
                 metrics: Metrics, gate: Optional[PassGate] = None) -> None:
    """Run passes until the queue closes; ``reconcile(name)`` returns when to look
    again (None: at resync). With a ``gate``, each pass waits for its turn first."""
    while True:
        if gate is not None:
            await gate.acquire()
        try:
            if not await _one_pass(queue, reconcile, metrics):
                return
        finally:
            if gate is not None:
                gate.release()


async def _one_pass(queue: WorkQueue, reconcile: Callable[[str], Awaitable[Optional[float]]],
                    metrics: Metrics) -> bool:
    """Take a service from the queue and pass it; False once the queue is closed."""
    try:
        name = await queue.get()
    except QueueClosed:
        return False
    try:
        retry_in = await reconcile(name)
    except Exception as e:  # noqa: BLE001 - one bad pass must not end the worker
        delay = queue.retry(name)
        metrics.passes.labels("failed").inc()
        metrics.errors.labels(getattr(e, "reason", type(e).__name__)).inc()
        if isinstance(e, GenisysError):
            log.warning("reconcile %s failed: %s; again in %.1fs", name, e, delay)
        else:
            log.exception("reconcile %s crashed; again in %.1fs", name, delay)
    else:
        queue.forget(name)
        if retry_in is not None:
            queue.add_after(name, retry_in)
    finally:
        queue.done(name)
    return True


async def resync_timer(interval: float, resync: Callable[[], Awaitable[None]]) -> None:
    """``await resync()`` every ``interval`` seconds, forever; a failed one is logged
    and the next one comes all the same."""
    while True:
        await asyncio.sleep(interval)
        try:
            await resync()
        except GenisysError as e:
            log.warning("resync failed: %s", e)
