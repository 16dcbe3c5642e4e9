"""How many calls genisys keeps in flight to one connector: a limit that finds its level.

Each connector gets an ``AdaptiveLimit``, in the manner of TCP Vegas and
Netflix's concurrency-limits: the limit grows while the connector's latency
stays near the lowest seen lately, and shrinks when latency rises (calls queue
up somewhere: in the connector, or in a controller too busy to read answers)
or calls fail for want of capacity (a timeout, no connection, a 5xx). A fast
connector so gets many calls at once, and a slow, single-threaded or failing
one few. The limit never passes ``ceiling`` (``connector.max_in_flight``).

The rules, per call that ends (a *sample*):

* **Latency baseline**: the lowest latency of the last two windows of
  ``window`` samples, so a connector that became slower for good gets a new
  baseline within two windows instead of being taken for congested forever.
* **Congested**: a sample whose latency is above ``tolerance`` times the
  baseline, or that failed for want of capacity. The limit is multiplied by
  ``backoff`` (latency) or halved (failure), at most once per round trip:
  the calls started before a decrease report the old limit's congestion, not
  the new one's.
* **Flat**: any other sample grows the limit, if at least half of it was in
  use while the call ran: by 1 per sample until the first congestion (the
  limit doubles every round trip), then by 1 every ``probe`` round trips. A
  limit not in use does not grow: idle time says nothing about what the
  connector takes. Probing slowly past the last congestion keeps the calls
  that find it again (slow, all of those started before the decrease) few.

Calls beyond the limit wait their turn, first come first served. A waiting
call gives up (``acquire`` raises ``TimeoutError``) only when the connector has
answered no call for ``timeout`` seconds while it waited: a long queue behind a
connector that answers is only a queue, but calls queued behind hung ones fail
as fast as those do.
"""

import asyncio
import collections
import math
import time
from typing import NamedTuple, Optional

#: Calls in flight to a connector never seen before.
INITIAL_LIMIT = 4
#: Latency above this many times the baseline is congestion.
TOLERANCE = 1.5
#: The limit is multiplied by this on congested latency (and halved on a failure).
BACKOFF = 0.8
#: After the first congestion, the limit grows by 1 every this many round trips.
PROBE = 4
#: Samples per window of the latency baseline.
WINDOW = 100


class Turn(NamedTuple):
    """A call's turn: ``acquire`` gives it, ``release`` takes it back."""

    #: Calls started before it, plus one: orders it against the limit's decreases.
    number: int
    #: Calls in flight once it started, itself included.
    load: int
    #: The limit when it started.
    limit: float


class AdaptiveLimit:
    """The limit of calls in flight to one connector, and the calls waiting for a turn."""

    def __init__(self, ceiling: int, *, initial: int = INITIAL_LIMIT, floor: int = 1,
                 tolerance: float = TOLERANCE, backoff: float = BACKOFF,
                 probe: int = PROBE, window: int = WINDOW) -> None:
        self.ceiling = ceiling
        self.floor = min(floor, ceiling)
        self.limit = float(max(self.floor, min(initial, ceiling)))
        self.tolerance = tolerance
        self.backoff = backoff
        self.probe = probe
        self.window = window
        #: Calls started and not yet ended.
        self.in_flight = 0
        #: Calls started so far; a call's number orders it against decreases.
        self._started = 0
        #: Calls started before this number report the limit before the last decrease.
        self._decreased_at = 0
        #: Until the first congestion, the limit grows by 1 per flat sample.
        self._slow_start = True
        self._window_min = math.inf
        self._previous_min = math.inf
        self._samples = 0
        self._waiting: collections.deque[asyncio.Future[Turn]] = collections.deque()
        #: time.monotonic() of the last call answered (failures for want of capacity
        #: are no answer).
        self._last_answer = time.monotonic()

    @property
    def baseline(self) -> float:
        """The lowest latency of the last two windows (inf: none measured yet)."""
        return min(self._window_min, self._previous_min)

    def _room(self) -> bool:
        return self.in_flight < max(int(self.limit), self.floor)

    async def acquire(self, timeout: float) -> Turn:
        """Wait for a turn (to hand to ``release``). TimeoutError when
        the connector answered no call for ``timeout`` seconds of the wait."""
        if not self._waiting and self._room():
            return self._start()
        queued = time.monotonic()
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            while True:
                left = max(self._last_answer, queued) + timeout - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no call answered for %gs" % timeout)
                try:
                    return await asyncio.wait_for(asyncio.shield(turn), left)
                except asyncio.TimeoutError:
                    continue  # calls may have been answered meanwhile: look again
        except BaseException:
            if turn.done() and not turn.cancelled():
                self._give_back()  # granted just as we gave up: hand the turn on
            else:
                turn.cancel()
                self._waiting.remove(turn)  # a turn granted left the line already
            raise

    def _start(self) -> Turn:
        self.in_flight += 1
        self._started += 1
        return Turn(self._started, self.in_flight, self.limit)

    def release(self, turn: Turn, *, seconds: Optional[float] = None,
                failed: bool = False) -> None:
        """The call of ``turn`` ended after ``seconds`` (None: no latency to learn from,
        such as a batch call's); ``failed``: for want of capacity (a timeout, no
        connection, 429 or 503)."""
        used = max(turn.load, self.in_flight)
        self.in_flight -= 1
        if failed:
            self._decrease(turn, 0.5)
        else:
            self._last_answer = time.monotonic()
            if seconds is not None:
                self._sample(turn, seconds, used)
        self._hand_on()

    def _give_back(self) -> None:
        """A turn granted to a call that no longer wants it."""
        self.in_flight -= 1
        self._hand_on()

    def _hand_on(self) -> None:
        while self._waiting and self._room():
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(self._start())

    def _sample(self, turn: Turn, seconds: float, used: int) -> None:
        self._samples += 1
        self._window_min = min(self._window_min, seconds)
        if self._samples >= self.window:
            self._previous_min, self._window_min, self._samples = self._window_min, math.inf, 0
        if seconds > self.tolerance * self.baseline:
            self._decrease(turn, self.backoff)
        elif 2 * used >= turn.limit:
            step = 1.0 if self._slow_start else 1.0 / (self.probe * self.limit)
            self.limit = min(self.ceiling, self.limit + step)

    def _decrease(self, turn: Turn, factor: float) -> None:
        if turn.number <= self._decreased_at:
            return  # started before the last decrease: that one answered for it
        self._slow_start = False
        self.limit = max(self.floor, self.limit * factor)
        self._decreased_at = self._started
