"""Background tasks that never die silently.

Every long-running loop (watcher, workers, resync timer, reaper, ...) is
started with ``start_task``: it has a name, an unexpected exception or exit
is logged, and ``stop_tasks`` stops a group by cancel-then-wait with a
deadline, so shutdown is an ordinary, bounded code path.
"""

import asyncio
import logging

log = logging.getLogger(__name__)


def start_task(coro, *, name, on_crash=None):
    """Run ``coro`` as a named task whose failure is logged (and reported to
    ``on_crash(task, exc)``, e.g. to stop the process) rather than lost."""
    task = asyncio.get_running_loop().create_task(coro, name=name)

    def done(t):
        if t.cancelled():
            return
        exc = t.exception()
        if exc is None:
            log.debug("task %s finished", name)
            return
        log.error("task %s crashed: %r", name, exc, exc_info=exc)
        if on_crash is not None:
            on_crash(t, exc)
    task.add_done_callback(done)
    return task


async def stop_tasks(tasks, *, timeout=10.0):
    """Cancel ``tasks`` and wait up to ``timeout`` seconds for them to end.

    Returns the tasks that did not end in time (logged as a warning)."""
    tasks = [t for t in tasks if t is not None]
    for task in tasks:
        task.cancel()
    if not tasks:
        return []
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        log.warning("task %s did not stop within %.0fs", task.get_name(), timeout)
    return list(pending)
