"""The process backend: each resource of a service is an OS process (and its process group).

Scaling up starts the definition's command in a session of its own, output
to a log file per process under ``<state-dir>/logs/``; scaling down stops
the newest: SIGTERM to the process group, SIGKILL after the grace period,
in the background (a process being stopped still counts as running, until it
exits: what runs is what is alive).
Processes that exit on their own are reaped and no longer counted.

The state directory makes the connector restartable without losing or
duplicating anything: ``state.json`` records every live process (with its
start time from ``/proc/<pid>/stat``, which tells it apart from a later
process that got the same pid) and the service definitions. A connector
that starts again (after a crash or SIGKILL) re-adopts the recorded processes
that still run. Every process also carries its state directory in its
environment (``GENISYS_CONNECTOR_STATE_DIR``), so a process started in the
instant before a crash, before the state file recorded it, is found in
/proc and adopted too. ``lock`` (flock) keeps two connectors off one directory.
A graceful stop (``close``) stops every process; nothing is left behind.
"""

import asyncio
import collections
import dataclasses
import datetime
import logging
import os
import re
import signal
import subprocess
import time
from typing import Optional

from genisys.connector.backend import Backend
from genisys.connector.statedir import StateDir
from genisys.errors import StartFailed, StartupError
from genisys.tasks import start_task, stop_tasks

log = logging.getLogger(__name__)

LOG_DIR = "logs"
STATE_VERSION = 1
#: Seconds between two looks for processes that exited on their own (count
#: also looks, so this only bounds how stale /metrics and the logs can be).
REAP_INTERVAL = 0.5
#: Seconds between two looks at a process being stopped.
STOP_POLL_INTERVAL = 0.05
#: Seconds close() waits, beyond the grace period, for SIGKILLed processes to go.
CLOSE_EXTRA_SECONDS = 10.0
#: While a big order starts processes, the state file is rewritten at most this often
#: (seconds): rewriting it after each of 10000 starts would cost O(n^2). A connector
#: SIGKILLed in that window finds the processes it had not recorded in /proc when it
#: starts again (``find_unrecorded``).
SAVE_INTERVAL = 0.1
#: Logs of exited processes kept per service (newest first): a command that keeps
#: crashing must not fill the disk with one log per attempt.
KEEP_LOGS = 20
#: In the environment of every process: the (real) state directory that owns it.
STATE_DIR_ENV = "GENISYS_CONNECTOR_STATE_DIR"


# -- /proc ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ProcStat:
    state: str
    pgid: int
    #: Clock ticks after boot at which the process started: with the pid, an identity.
    start_time: int


def read_proc_stat(pid):
    """State, process group and start time of ``pid``, or None if there is no such process."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    # "pid (comm) state ppid pgrp session ..." -- comm may hold spaces and parentheses.
    fields = data[data.rindex(b")") + 2:].split()
    return ProcStat(state=fields[0].decode(), pgid=int(fields[2]), start_time=int(fields[19]))


def find_unrecorded(state_dir, known):
    """Resources for the processes started from ``state_dir`` whose pid is not in
    ``known``: the leaders of their own process group (as every process the backend
    starts is) with ``STATE_DIR_ENV`` naming it in their environment."""
    marker = ("%s=%s" % (STATE_DIR_ENV, state_dir)).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in known:
            continue
        pid = int(entry)
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                environ = f.read().split(b"\0")
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = tuple(a.decode("utf-8", "replace") for a in f.read().split(b"\0")[:-1])
        except OSError:
            continue  # gone, or not ours to read
        if marker not in environ:
            continue
        stat = read_proc_stat(pid)
        if stat is None or stat.pgid != pid or stat.state in ("Z", "X"):
            continue  # a child of one of ours, not a resource
        service = next((v.split(b"=", 1)[1].decode() for v in environ
                        if v.startswith(b"GENISYS_SERVICE=")), None)
        if service:
            found.append(Resource(service=service, pid=pid, pgid=pid,
                                  start_time=stat.start_time, argv=argv, log="",
                                  started="(found in /proc)"))
    return found


def is_running(pid, start_time):
    """True if ``pid`` is the process that started at ``start_time`` and has not exited."""
    stat = read_proc_stat(pid)
    return stat is not None and stat.start_time == start_time and stat.state not in ("Z", "X")


# -- one process --------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class Resource:
    """One process of a service, as the state file records it."""

    service: str
    pid: int
    pgid: int
    start_time: int
    argv: tuple
    log: str
    #: Wall-clock start, for people reading the state file.
    started: str
    stopping: bool = False
    #: Our child while we started it; None once adopted after a restart (not ours to wait).
    popen: Optional[subprocess.Popen] = None

    def to_state(self):
        return {"service": self.service, "pid": self.pid, "pgid": self.pgid,
                "start_time": self.start_time, "argv": list(self.argv), "log": self.log,
                "started": self.started, "stopping": self.stopping}

    @classmethod
    def from_state(cls, entry):
        return cls(service=entry["service"], pid=int(entry["pid"]), pgid=int(entry["pgid"]),
                   start_time=int(entry["start_time"]), argv=tuple(entry["argv"]),
                   log=entry.get("log", ""), started=entry.get("started", ""),
                   stopping=bool(entry.get("stopping", False)))

    def describe(self):
        return "process %d of %s" % (self.pid, self.service)

    def exited(self):
        """True once the process has exited. Our own child stays a zombie (not reaped)
        so its pid and process group can't be reused until ``reap``."""
        if self.popen is None:
            return not is_running(self.pid, self.start_time)
        if self.popen.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def signal(self, sig):
        """Send ``sig`` to the process group and to the process itself (in case it left
        the group). An adopted process is signalled only if it is still the one we started."""
        if self.popen is None and not is_running(self.pid, self.start_time):
            return
        for send, target in ((os.killpg, self.pgid), (os.kill, self.pid)):
            try:
                send(target, sig)
            except ProcessLookupError:
                pass
            except PermissionError as e:
                log.warning("cannot signal %s: %s", self.describe(), e)

    def reap(self):
        """After exit: kill what is left of its process group, collect the exit status."""
        # The group outlives its leader if the command forked: those would be orphans.
        # Our own child is still a zombie here, which keeps the pgid from being reused;
        # for an adopted one, only when no process holds that number any more.
        if self.popen is not None or read_proc_stat(self.pgid) is None:
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.popen is None:
            return "exited (status unknown: adopted after a restart)"
        status = self.popen.wait()
        if status < 0:
            try:
                return "killed by %s" % signal.Signals(-status).name
            except ValueError:
                return "killed by signal %d" % -status
        return "exited with status %d" % status


# -- the backend ----------------------------------------------------------------------


class ProcessBackend(Backend):
    name = "process"
    requires_definitions = True

    def __init__(self, *, state_dir, grace_period=10.0):
        """``state_dir``: where the state file, lock and logs live; ``grace_period``:
        seconds between SIGTERM and SIGKILL when a process is stopped."""
        super().__init__()
        # Real path: it is how processes are recognised in /proc (STATE_DIR_ENV).
        self.state_dir = os.path.realpath(state_dir)
        self.grace_period = grace_period
        self._dir = StateDir(self.state_dir, kind="process", version=STATE_VERSION,
                             at_stake="the processes it lists will not be adopted")
        self.state_path = self._dir.state_path
        self.log_dir = os.path.join(state_dir, LOG_DIR)
        #: service -> its running processes, oldest first.
        self._running = {}
        #: Processes being stopped, and the tasks stopping them.
        self._stopping = {}
        self._reaper = None

    # -- life cycle ----------------------------------------------------------------

    async def start(self):
        try:
            os.makedirs(self.log_dir, exist_ok=True)
        except OSError as e:
            raise StartupError("cannot create the state directory %s: %s"
                               % (self.state_dir, e.strerror or e)) from e
        self._take_lock()
        try:
            state = self._read_state()
            self._load_definitions(state.get("definitions", {}), self.state_path, check_cwd=False)
            self._adopt_all(state.get("processes", []))
            self._save_state()
        except OSError as e:
            self._release_lock()
            raise StartupError("cannot write the state file %s: %s"
                               % (self.state_path, e.strerror or e)) from e
        except BaseException:
            self._release_lock()
            raise
        self._reaper = start_task(self._reap_forever(), name="process reaper")

    async def close(self):
        """Stop every process (SIGTERM, grace period, SIGKILL) and wait for them to go."""
        await stop_tasks([self._reaper])
        self._reaper = None
        # A scale order still running would start processes behind our back: wait for it,
        # and hold every lock so no new one begins.
        for service in sorted(set(self._locks) | set(self._running)):
            await self.lock(service).acquire()
        for service in list(self._running):
            for resource in reversed(self._running.pop(service)):
                self._begin_stop(resource)
        self._save_state()
        tasks = list(self._stopping.values())
        if tasks:
            log.info("stopping %d process(es)", len(tasks))
            _, pending = await asyncio.wait(tasks, timeout=self.grace_period
                                            + CLOSE_EXTRA_SECONDS)
            for resource in [r for r, t in self._stopping.items() if t in pending]:
                log.error("%s did not exit; it stays in %s", resource.describe(),
                          self.state_path)
        self._save_state()
        self._release_lock()

    def _take_lock(self):
        self._dir.open()

    def _release_lock(self):
        self._dir.close()

    # -- the state file --------------------------------------------------------

    def _read_state(self):
        return self._dir.read()

    def _save_state(self):
        processes = [r for rs in self._running.values() for r in rs] + list(self._stopping)
        self._dir.write({"connector_pid": os.getpid(),
                         "definitions": {n: d.to_json()
                                         for n, d in sorted(self._definitions.items())},
                         "processes": [r.to_state() for r in processes]})

    def definitions_changed(self):
        self._save_state()

    def _adopt_all(self, entries):
        adopted = []
        for entry in entries:
            try:
                resource = Resource.from_state(entry)
            except (KeyError, TypeError, ValueError) as e:
                log.error("ignoring a bad process entry in %s: %r (%s)", self.state_path,
                          entry, e)
                continue
            if not adoptable(resource):
                log.info("forgetting %s: no longer running", resource.describe())
                continue
            adopted.append(resource)
        for resource in find_unrecorded(self.state_dir, {r.pid for r in adopted}):
            log.warning("found %s in /proc, not in the state file (the connector died "
                        "while starting it): adopting it", resource.describe())
            adopted.append(resource)
        # Oldest first, as if we had started them: scale-down stops the newest.
        adopted.sort(key=lambda r: (r.start_time, r.pid))
        for resource in adopted:
            if resource.stopping:
                log.info("adopted %s, which was being stopped: stopping it", resource.describe())
                self._begin_stop(resource)
            else:
                log.info("adopted %s (started %s)", resource.describe(), resource.started)
                self._running.setdefault(resource.service, []).append(resource)

    # -- the protocol ------------------------------------------------------------

    async def count(self, service):
        self._reap(service)
        # Processes count even without a definition (only a hand-edited state file can
        # do that): they must stay visible, and stoppable; those being stopped too.
        alive = self._alive(service)
        if not alive:
            self.definition_for(service)
        return alive

    def _alive(self, service):
        """What runs of ``service``: its processes, and those being stopped (they run
        until they exit: a rebalance must not count them gone, nor a capacity free)."""
        stopping = sum(1 for r in self._stopping if r.service == service)
        return len(self._running.get(service, ())) + stopping

    async def scale(self, service, number):
        async with self.lock(service):
            self._reap(service)
            running = self._running.get(service, [])
            if number > len(running) or not running:
                definition = self.definition_for(service)  # before anything changes
            running = self._running.setdefault(service, running)
            if number > len(running):
                await self._scale_up(definition, running, number)
            elif number < len(running):
                log.info("scaling %s down from %d to %d", service, len(running), number)
                victims = running[number:]
                del running[number:]
                for resource in reversed(victims):
                    self._begin_stop(resource)
                self._save_state()
            if not running:
                del self._running[service]
            return self._alive(service)

    async def _scale_up(self, definition, running, number):
        log.info("scaling %s up from %d to %d", definition.name, len(running), number)
        started, saved = [], 0.0
        try:
            # Counted up front: the reaper may drop one that already exited meanwhile,
            # and that must not start another (the next order or resync will).
            for _ in range(number - len(running)):
                resource = self._spawn(definition)
                started.append(resource)
                running.append(resource)
                # Recorded before the next starts (for a small order): a crash orphans nothing.
                if time.monotonic() - saved >= SAVE_INTERVAL:
                    self._save_state()
                    saved = time.monotonic()
                await asyncio.sleep(0)  # a big order must not hold the event loop
            self._save_state()
        except StartFailed:
            # Nothing of a refused order is left running.
            for resource in started:
                running.remove(resource)
                self._begin_stop(resource)
            self._save_state()
            raise

    def snapshot(self):
        for service in list(self._running):
            self._reap(service)
        return {service: len(rs) for service, rs in sorted(self._running.items())}

    def stopping(self):
        return dict(collections.Counter(r.service for r in self._stopping))

    def in_use(self):
        """The snapshot without its reaping, which asks every process whether it exited:
        one that exited on its own counts until the reaper sees it (REAP_INTERVAL); and
        with the processes still stopping, which hold what they hold until they exit."""
        used = collections.Counter({service: len(rs) for service, rs in self._running.items()})
        used.update(r.service for r in self._stopping)
        return dict(used)

    # -- processes ------------------------------------------------------------------

    def _spawn(self, definition):
        env = dict(os.environ)
        env.update(definition.environment)
        env["GENISYS_SERVICE"] = definition.name
        env[STATE_DIR_ENV] = self.state_dir
        starting = os.path.join(self.log_dir, "%s-starting.log" % definition.name)
        with open(starting, "ab") as out:
            try:
                popen = subprocess.Popen(
                    list(definition.command), env=env, cwd=definition.cwd,
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True, close_fds=True)
            except OSError as e:
                os.unlink(starting)
                if definition.cwd and e.filename == definition.cwd:
                    field, what = "cwd", "working directory %r" % definition.cwd
                else:
                    field, what = "command", "command %r" % (list(definition.command),)
                log.error("cannot start %s: %s: %s", definition.name, what, e.strerror or e)
                raise StartFailed("cannot start service %s: %s: %s"
                                  % (definition.name, what, e.strerror or e),
                                  field=field) from e
        stat = read_proc_stat(popen.pid)
        start_time = stat.start_time if stat else 0
        log_path = os.path.join(self.log_dir, "%s-%d-%d.log" % (definition.name, popen.pid,
                                                               start_time))
        try:
            os.replace(starting, log_path)
        except OSError as e:  # the process runs: it must be recorded whatever its log's name
            log.warning("cannot rename %s: %s", starting, e)
            log_path = starting
        resource = Resource(service=definition.name, pid=popen.pid, pgid=popen.pid,
                            start_time=start_time, argv=definition.command, log=log_path,
                            started=_now(), popen=popen)
        log.info("started %s: %s (log %s)", resource.describe(), " ".join(definition.command),
                 log_path)
        return resource

    def _begin_stop(self, resource):
        """Stop ``resource`` in the background: no order counts on it any more, but it
        counts as running (``count``) until it exits."""
        resource.stopping = True
        self._stopping[resource] = start_task(self._stop(resource),
                                              name="stop %s" % resource.describe())

    async def _stop(self, resource):
        try:
            resource.signal(signal.SIGTERM)
            deadline = time.monotonic() + self.grace_period
            while not resource.exited() and time.monotonic() < deadline:
                await asyncio.sleep(STOP_POLL_INTERVAL)
            if not resource.exited():
                log.warning("%s did not exit within %gs of SIGTERM: sending SIGKILL",
                            resource.describe(), self.grace_period)
                resource.signal(signal.SIGKILL)
                while not resource.exited():
                    await asyncio.sleep(STOP_POLL_INTERVAL)
            log.info("stopped %s: %s", resource.describe(), resource.reap())
        finally:
            if resource.exited():
                del self._stopping[resource]
                self._save_state()
                self.prune_logs(resource.service)

    def _reap(self, service):
        """Forget the processes of ``service`` that exited on their own.

        Never removes the service's list: a scale order may be filling it (only
        scale, under the service's lock, removes an empty one)."""
        running = self._running.get(service, [])
        gone = [r for r in running if r.exited()]
        for resource in gone:
            running.remove(resource)
            log.warning("%s %s (log %s)", resource.describe(), resource.reap(), resource.log)
        if gone:
            self._save_state()
            self.prune_logs(service)

    def prune_logs(self, service):
        """Delete the oldest logs of exited processes of ``service`` beyond KEEP_LOGS."""
        pattern = re.compile(r"%s-\d+-\d+\.log" % re.escape(service))
        live = {r.log for r in self._running.get(service, ())} | {r.log for r in self._stopping}
        try:
            names = [n for n in os.listdir(self.log_dir) if pattern.fullmatch(n)]
        except OSError as e:
            log.warning("cannot list %s: %s", self.log_dir, e.strerror or e)
            return
        paths = [os.path.join(self.log_dir, n) for n in names]
        done = [p for p in paths if p not in live]
        done.sort(key=lambda p: os.stat(p).st_mtime if os.path.exists(p) else 0, reverse=True)
        for path in done[KEEP_LOGS:]:
            try:
                os.unlink(path)
            except OSError:
                pass  # gone already, or not ours to delete: harmless

    async def _reap_forever(self):
        while True:
            await asyncio.sleep(REAP_INTERVAL)
            try:
                for service in list(self._running):
                    self._reap(service)
            except OSError as e:
                # The state file could not be written (disk full?): try again next time.
                log.error("cannot write the state file %s: %s", self.state_path, e)


def adoptable(resource):
    """True if the process a state file entry describes still runs: same pid, same start
    time (a different one means the pid was reused by another process), not a zombie."""
    return is_running(resource.pid, resource.start_time)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
