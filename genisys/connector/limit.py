"""How many calls genisys keeps in flight to one connector: a limit that finds its level.

Each connector gets an ``AdaptiveLimit``, in the manner of TCP Vegas and
Netflix's concurrency-limits: the limit grows while the connector's latency
stays near the lowest seen lately, and shrinks when latency rises (calls queue
up somewhere: in the connector, or in a controller too busy to read answers)
or calls fail for want of capacity (a timeout, no connection, a 5xx). A fast
connector so gets many calls at once, and a slow, single-threaded or failing
one few. The limit never passes ``ceiling`` (``connector.max_in_flight``).

The rules, judged once per *window*: as many calls as the limit (8 at least)
ended, which is about one round trip:

* **Latency**: the window's median latency, compared with the **baseline**,
  the lowest median of the last ``history`` windows. A median, not each call:
  on a busy machine single calls are slow now and then, and that is noise, not
  congestion. The baseline rises by itself when a connector became slower for
  good (its old, faster windows leave the history).
* **Congested**: a median above ``tolerance`` times the baseline multiplies
  the limit by ``backoff``; a call that failed for want of capacity (a timeout,
  no connection, 429 or 503) halves it at once. The calls started before a
  decrease report the old limit's congestion, not the new one's: they are left
  out of the next window, and cannot decrease it again.
* **Slow start**: until the first congestion, each call answered within
  ``tolerance`` times the fastest call yet grows the limit by 1, as TCP's slow
  start does per acknowledgement: from 1, the limit doubles every round trip
  while latency stays flat. (Per window it would take 8 round trips at a limit
  of 1, 4 at 2, and so on.) A slow call only does not grow it: congestion is
  the windows' to judge, from their medians. In slow start they are judged
  against the fastest call too, since the first windows, taken while the limit
  ramps up, may already be congested and would make a congested baseline.
* **Flat**: after slow start, a window that is not congested grows the limit by
  1 every ``probe`` windows, if at least half of it was in use. A limit not in
  use does not grow: idle time says nothing about what the connector takes.
  Probing slowly past the last congestion keeps the calls that find it again
  few.

Latency is the connector's, not genisys' own: the caller says with each
sample how late its event loop runs (``LoopLag``), and the windows learn from
the latency less that lag, so a controller busy with other work does not take
every connector for congested. The fastest call is the latency as measured,
lag and all: it is never below the connector's own, however the lag is
misjudged, so a lag taken too large cannot set a yardstick nothing meets.

Calls beyond the limit wait their turn, first come first served. A waiting
call gives up (``acquire`` raises ``TimeoutError``) only when the connector has
answered no call for ``timeout`` seconds while it waited: a long queue behind a
connector that answers is only a queue, but calls queued behind hung ones fail
as fast as those do (the call in flight that times out fails those in line since
it was sent, rather than hand one its turn). One timer per limit watches the
whole line: ten thousand waiting calls cost no more than one.
"""

import asyncio
import collections
import math
import time
from typing import NamedTuple, Optional

#: Calls in flight to a connector never seen before: slow start doubles it each
#: round trip while latency stays flat (1, 2, 4 ... 128 in seven round trips).
INITIAL_LIMIT = 1
#: A window's median latency above this many times the baseline is congestion.
TOLERANCE = 1.5
#: The limit is multiplied by this on congested latency (and halved on a failure).
BACKOFF = 0.8
#: After the first congestion, the limit grows by 1 every this many windows.
PROBE = 4
#: Fewest calls in a window, and how many windows' medians the baseline is taken from.
MIN_WINDOW = 8
HISTORY = 10


class Turn(NamedTuple):
    """A call's turn: ``acquire`` gives it, ``release`` takes it back."""

    #: Calls started before it, plus one: orders it against the limit's decreases.
    number: int
    #: Calls in flight once it started, itself included.
    load: int
    #: The limit when it started.
    limit: float
    #: time.monotonic() when it started.
    at: float


class _Waiting(NamedTuple):
    """A call in line: since when, and the future its turn is handed in."""

    since: float
    turn: "asyncio.Future[Turn]"


class AdaptiveLimit:
    """The limit of calls in flight to one connector, and the calls waiting for a turn."""

    def __init__(self, ceiling: int, *, timeout: float, initial: int = INITIAL_LIMIT,
                 floor: int = 1, tolerance: float = TOLERANCE, backoff: float = BACKOFF,
                 probe: int = PROBE, history: int = HISTORY) -> None:
        self.ceiling = ceiling
        #: Seconds a call waits in line while the connector answers nothing.
        self.timeout = timeout
        self.floor = min(floor, ceiling)
        self.limit = float(max(self.floor, min(initial, ceiling)))
        self.tolerance = tolerance
        self.backoff = backoff
        self.probe = probe
        #: Calls started and not yet ended.
        self.in_flight = 0
        #: Calls started so far; a call's number orders it against decreases.
        self._started = 0
        #: Calls started before this number report the limit before the last decrease.
        self._decreased_at = 0
        #: Until the first congestion, the limit grows by 1 per call answered fast.
        self._slow_start = True
        #: The latencies of the window so far, and the most calls in flight during it
        #: (and the last one); how many calls it takes, and the limit when it began.
        self._window: list[float] = []
        self._window_used = self._was_used = 0
        self._window_size = max(MIN_WINDOW, int(self.limit))
        self._window_limit = self.limit
        #: The lowest latency of a single call yet: slow start's yardstick per call.
        self._fastest = math.inf
        #: The median latencies of the last windows.
        self._medians: collections.deque[float] = collections.deque(maxlen=history)
        self._waiting: collections.deque[_Waiting] = collections.deque()
        #: The timer that fails the calls in line once the connector is silent too long.
        self._timer: Optional[asyncio.TimerHandle] = None
        #: time.monotonic() of the last call answered (failures for want of capacity
        #: are no answer).
        self._last_answer = time.monotonic()

    @property
    def baseline(self) -> float:
        """The lowest median latency of the last windows (inf: none measured yet)."""
        return min(self._medians, default=math.inf)

    @property
    def waiting(self) -> int:
        """Calls in line for a turn."""
        return len(self._waiting)

    def _room(self) -> bool:
        return self.in_flight < max(int(self.limit), self.floor)

    async def acquire(self) -> Turn:
        """Wait for a turn (to hand to ``release``). TimeoutError when the connector
        answered no call for ``timeout`` seconds of the wait."""
        if not self._waiting and self._room():
            return self._start()
        waiting = _Waiting(time.monotonic(), asyncio.get_running_loop().create_future())
        self._waiting.append(waiting)
        self._watch_line()
        try:
            return await waiting.turn
        except asyncio.CancelledError:
            turn = waiting.turn
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                self._give_back()  # granted just as our caller gave up: hand it on
            elif not turn.done():
                turn.cancel()
                self._waiting.remove(waiting)  # a turn handed out left the line already
            raise

    def _watch_line(self) -> None:
        """Have the timer wake up when the first call in line would give up."""
        if self._timer is not None or not self._waiting:
            return
        due = max(self._last_answer, self._waiting[0].since) + self.timeout
        self._timer = asyncio.get_running_loop().call_later(
            max(0.0, due - time.monotonic()), self._give_up)

    def _give_up(self) -> None:
        """Fail the calls in line that waited ``timeout`` while nothing was answered."""
        self._timer = None
        self._expire(math.inf)
        self._watch_line()

    def _expire(self, silent_since: float) -> None:
        """Fail the calls in line that the connector answered nothing for ``timeout``:
        since they joined it, or since ``silent_since`` if they joined later."""
        now = time.monotonic()
        while self._waiting and max(self._last_answer, min(silent_since,
                                                           self._waiting[0].since)) \
                + self.timeout <= now:
            turn = self._waiting.popleft().turn
            if not turn.done():
                turn.set_exception(TimeoutError("no call answered for %gs" % self.timeout))

    def _start(self) -> Turn:
        self.in_flight += 1
        self._started += 1
        return Turn(self._started, self.in_flight, self.limit, time.monotonic())

    def release(self, turn: Turn, *, seconds: Optional[float] = None, lag: float = 0.0,
                failed: bool = False) -> None:
        """The call of ``turn`` ended after ``seconds`` (None: no latency to learn
        from), of which up to ``lag`` was the caller's event loop running late;
        ``failed``: for want of capacity (a timeout, no connection, 429 or 503)."""
        used = max(turn.load, self.in_flight)
        self.in_flight -= 1
        if failed:
            self._decrease(turn, 0.5)
            if time.monotonic() - turn.at >= self.timeout:
                # It timed out: the calls in line since it was sent would only find the
                # connector as silent.
                self._expire(turn.at)
        else:
            self._last_answer = time.monotonic()
            if seconds is not None:
                self._sample(turn, seconds, lag, used)
        self._hand_on()

    def _give_back(self) -> None:
        """A turn granted to a call that no longer wants it."""
        self.in_flight -= 1
        self._hand_on()

    def _hand_on(self) -> None:
        while self._waiting and self._room():
            turn = self._waiting.popleft().turn
            if not turn.done():
                turn.set_result(self._start())
        if not self._waiting and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _sample(self, turn: Turn, measured: float, lag: float, used: int) -> None:
        if turn.number <= self._decreased_at:
            return  # it ran under the limit before the last decrease
        seconds = max(0.0, measured - lag)
        self._fastest = min(self._fastest, measured)
        self._window_used = max(self._window_used, used)
        if self._slow_start and 2 * max(self._window_used, self._was_used) >= self.limit \
                and seconds <= self.tolerance * self._fastest:
            self.limit = min(self.ceiling, self.limit + 1)
        self._window.append(seconds)
        if len(self._window) < self._window_size:
            return
        median = sorted(self._window)[len(self._window) // 2]
        baseline, used = self.baseline, self._window_used
        if self._slow_start:
            baseline = min(baseline, self._fastest)
        self._medians.append(median)
        if median > self.tolerance * baseline:
            self._decrease(turn, self.backoff)
            return
        if not self._slow_start and 2 * used >= self._window_limit:
            self.limit = min(self.ceiling, self.limit + 1.0 / self.probe)
        self._new_window()

    def _new_window(self) -> None:
        self._was_used = self._window_used
        self._window, self._window_used = [], 0
        self._window_size = max(MIN_WINDOW, int(self.limit))
        self._window_limit = self.limit

    def _decrease(self, turn: Turn, factor: float) -> None:
        if turn.number <= self._decreased_at:
            return  # started before the last decrease: that one answered for it
        self._slow_start = False
        self.limit = max(self.floor, self.limit * factor)
        self._decreased_at = self._started
        self._new_window()


class LoopLag:
    """How late the event loop runs its callbacks lately (seconds, a moving average):
    what a busy controller adds to every call's latency on its own. A timer that
    reschedules itself; ``stop`` cancels it."""

    #: Seconds between two looks, and the weight of the newest.
    INTERVAL = 0.05
    WEIGHT = 0.2

    def __init__(self) -> None:
        self.seconds = 0.0
        self._handle: Optional[asyncio.TimerHandle] = None
        self._asked = 0.0

    def start(self) -> None:
        if self._handle is None:
            self._schedule(asyncio.get_running_loop())

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._asked = time.monotonic()
        self._handle = loop.call_later(self.INTERVAL, self._look, loop)

    def _look(self, loop: asyncio.AbstractEventLoop) -> None:
        late = max(0.0, time.monotonic() - self._asked - self.INTERVAL)
        self.seconds += self.WEIGHT * (late - self.seconds)
        self._schedule(loop)
