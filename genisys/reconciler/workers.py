"""The loops that drive reconcile passes: the workers and the resync timer.

A worker takes a service name from the work queue, runs one pass, and puts the
name back when the pass asks to be looked at again (a progress check, a
backoff) or, after a failed pass, after the queue's own backoff. The resync
timer queues every service every ``poll_interval``: a lost wake-up or a crash
costs latency, never correctness.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Optional

from genisys.errors import GenisysError
from genisys.metrics import Metrics
from genisys.reconciler.queue import QueueClosed, WorkQueue

log = logging.getLogger(__name__)


async def worker(queue: WorkQueue, reconcile: Callable[[str], Awaitable[Optional[float]]], *,
                 metrics: Metrics) -> None:
    """Run passes until the queue closes; ``reconcile(name)`` returns when to look
    again (None: at resync)."""
    while True:
        try:
            name = await queue.get()
        except QueueClosed:
            return
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


async def resync_timer(interval: float, resync: Callable[[], Awaitable[None]]) -> None:
    """``await resync()`` every ``interval`` seconds, forever; a failed one is logged
    and the next one comes all the same."""
    while True:
        await asyncio.sleep(interval)
        try:
            await resync()
        except GenisysError as e:
            log.warning("resync failed: %s", e)
