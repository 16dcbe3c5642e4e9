"""A backend's state directory: its state file, and a lock.

``<state-dir>/state.json`` holds what a backend must remember across
restarts (the process backend: definitions and the processes it started;
the docker backend: definitions, since containers carry their own labels).
It is rewritten atomically (write, fsync, rename, fsync the directory) on
every change. ``lock`` (flock) keeps two connectors off one directory: they
would overwrite each other's state.
"""

import contextlib
import errno
import fcntl
import json
import logging
import os

from genisys.errors import StartupError

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
LOCK_FILE = "lock"


class StateDir:
    """``open()`` takes the lock; ``read()`` and ``write()`` the state; ``close()``.

    ``kind``: whose state files these are (the backend's name); ``version``: the
    one this code writes and reads; ``at_stake``: what is lost by starting
    afresh, for the message when the file can't be read."""

    def __init__(self, path, *, kind, version, at_stake):
        self.path = path
        self.kind = kind
        self.version = version
        self.at_stake = at_stake
        self.state_path = os.path.join(path, STATE_FILE)
        self._lock_fd = None

    def open(self):
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as e:
            raise StartupError("cannot create the state directory %s: %s"
                               % (self.path, e.strerror or e)) from e
        lock_path = os.path.join(self.path, LOCK_FILE)
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StartupError("cannot open %s: %s" % (lock_path, e.strerror or e)) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise StartupError("state directory %s is in use by another connector%s"
                                   % (self.path, " (pid %s)" % holder if holder else "")) from e
            raise StartupError("cannot lock %s: %s" % (lock_path, e.strerror or e)) from e
        os.ftruncate(fd, 0)
        os.write(fd, b"%d\n" % os.getpid())
        self._lock_fd = fd

    @contextlib.contextmanager
    def taken_back(self, connector_id, *, marks):
        """Open the directory and yield its state for a backend to take back (and write
        again); a failure closes it, and one to write the file is a StartupError.
        ``marks``: how the backend's resources carry their connector id, for the warning
        when another id last used the directory ("containers labelled x=%s")."""
        self.open()
        try:
            state = self.read()
            last = state.get("connector_id", connector_id)
            if last != connector_id:
                log.warning("the state directory %s was last used by connector id %s: %s are "
                            "not this connector's", self.path, last, marks % last)
            yield state
        except OSError as e:
            self.close()
            raise StartupError("cannot write the state file %s: %s"
                               % (self.state_path, e.strerror or e)) from e
        except BaseException:
            self.close()
            raise

    def close(self):
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def read(self):
        """The state: ``{}`` if there is none yet; StartupError if it can't be used."""
        state = read_kept(self.state_path, what="the state file", at_stake=self.at_stake)
        if state is None:
            return {}
        if not isinstance(state, dict) or state.get("version") != self.version:
            raise StartupError("the state file %s is not a version %d state file of the %s "
                               "backend" % (self.state_path, self.version, self.kind))
        return state

    def write(self, state):
        """Replace the state file with ``state`` (plus its version), durably."""
        if self._lock_fd is None:
            return  # not opened (or closed): the directory is not ours to write
        write_durably(self.state_path, dict(state, version=self.version))


def read_kept(path, *, what, at_stake):
    """The JSON ``path`` holds (None if there is no such file); StartupError, saying
    ``what`` it is and what starting afresh loses (``at_stake``), if it can't be read:
    starting anyway would lose what it holds, so a person decides."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise StartupError("cannot read %s %s: %s (move it away to start afresh; %s)"
                           % (what, path, getattr(e, "strerror", None) or e, at_stake)) from e


def write_durably(path, data):
    """Replace the JSON file ``path`` with ``data``: written aside, synced, renamed over
    it, and the directory synced, so a crash leaves the old file or the new one."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
