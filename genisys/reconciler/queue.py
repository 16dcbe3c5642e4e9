"""The work queue of the reconciler: service names waiting for a reconcile pass.

Like client-go's workqueue:

* a key is in the queue at most once, however many times it is added
  (a burst of 100 upscales of one service costs one or two passes);
* a key is never handed to two workers at once: added while a worker has it,
  it is marked dirty and handed out again once that worker is done;
* ``add_after`` delays a key (progress checks, per-pair retries);
  ``retry`` delays it by an exponential backoff with jitter that grows with
  each consecutive failure; ``forget`` resets that count after a success;
* a key made ready wakes one waiting worker, not all of them: with the
  default 256 workers idle, waking them all cost some 2 ms of CPU per key
  (upscales one at a time, 100 a second: 5.5 ms of the controller's CPU
  each, 3.3 ms when one worker wakes).
"""

import asyncio
import collections
import random
from typing import Callable, Optional


class QueueClosed(Exception):
    """``get`` on a queue that was shut down."""


class Backoff:
    """Exponential backoff with jitter: failure n waits about initial * 2**(n-1),
    at most ``maximum``; the jitter (a random half of the delay) spreads
    retries so a fleet of failing keys doesn't retry in lock-step."""

    def __init__(self, *, initial: float = 1.0, maximum: float = 60.0,
                 rng: Optional[random.Random] = None) -> None:
        self.initial = initial
        self.maximum = maximum
        self._random = (rng or random.Random()).random

    def ceiling(self, failures: int) -> float:
        """The largest delay after ``failures`` consecutive failures (>= 1)."""
        return min(self.maximum, self.initial * 2 ** min(max(failures, 1) - 1, 62))

    def delay(self, failures: int) -> float:
        """A random delay after ``failures`` consecutive failures."""
        return self.spread(failures, self._random())

    def spread(self, failures: int, jitter: float) -> float:
        """The delay after ``failures`` consecutive failures for a draw ``jitter`` in
        [0, 1): between half the ceiling and the ceiling."""
        ceiling = self.ceiling(failures)
        return ceiling / 2 + jitter * ceiling / 2

    def jitter(self) -> float:
        """A draw for ``spread``."""
        return self._random()


class WorkQueue:
    def __init__(self, *, backoff: Optional[Backoff] = None,
                 on_change: Optional[Callable[[], None]] = None) -> None:
        self.backoff = backoff or Backoff()
        #: Called with no argument when the depth changes (metrics).
        self._on_change = on_change
        self._ready: collections.deque[str] = collections.deque()
        self._queued: set[str] = set()  # in _ready
        self._active: set[str] = set()  # handed to a worker, not done yet
        self._dirty: set[str] = set()  # added while active: queue again when done
        # key -> (due time, TimerHandle)
        self._delayed: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: collections.Counter[str] = collections.Counter()
        #: Workers waiting in ``get``, oldest first; a ready key resolves one.
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    def __len__(self) -> int:
        """Keys ready to be handed out."""
        return len(self._ready)

    @property
    def delayed(self) -> int:
        return len(self._delayed)

    def holds(self, key: str) -> bool:
        """True if ``key`` is ready, handed to a worker, or due later."""
        return key in self._queued or key in self._active or key in self._delayed

    def add(self, key: str) -> None:
        """Queue ``key`` now (a delayed add of it is superseded)."""
        if self._closed:
            return
        pending = self._delayed.pop(key, None)
        if pending:
            pending[1].cancel()
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._ready.append(key)
            self._wake_one()
        self._changed()

    def add_after(self, key: str, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds, unless it is queued sooner."""
        if self._closed:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        pending = self._delayed.get(key)
        if pending and pending[0] <= due:
            return
        if pending:
            pending[1].cancel()
        self._delayed[key] = (due, loop.call_at(due, self._due, key))
        self._changed()

    def _due(self, key: str) -> None:
        self._delayed.pop(key, None)
        self.add(key)

    def retry(self, key: str) -> float:
        """A pass of ``key`` failed: queue it again after its backoff; returns the delay."""
        self._failures[key] += 1
        delay = self.backoff.delay(self._failures[key])
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        """A pass of ``key`` succeeded: its next failure starts the backoff over."""
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        return self._failures[key]

    async def get(self) -> str:
        """The next key; the caller must call ``done(key)`` when finished with it."""
        while not self._ready:
            if self._closed:
                raise QueueClosed()
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                # Cancelled: a wake-up meant for this worker goes to the next one.
                woken = waiter.done() and not waiter.cancelled()
                waiter.cancel()
                if not woken:
                    self._waiters.remove(waiter)
                elif self._ready:
                    self._wake_one()
                raise
        if self._closed:
            raise QueueClosed()
        key = self._ready.popleft()
        self._queued.discard(key)
        self._active.add(key)
        self._changed()
        return key

    def done(self, key: str) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def is_active(self, key: str) -> bool:
        return key in self._active

    def close(self) -> None:
        """Wake every waiting ``get`` with QueueClosed; cancel delayed adds."""
        self._closed = True
        for _, handle in self._delayed.values():
            handle.cancel()
        self._delayed.clear()
        while self._waiters:
            self._wake_one()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()
