"""Sidecar mode: keep genisys in step with a folder of manifests.

``genisys serve --manifests DIR`` applies the folder once it listens, and
again whenever the folder's content changes. Changes are noticed by polling,
cheaply: one ``stat`` per file every ``manifests_interval``, following
symlinks, so the atomic swap of a mounted Kubernetes ConfigMap (its
``..data`` link pointing at a new folder) is seen like any edit. What this
folder applied and no longer names is pruned; nothing else is touched.

It applies through the HTTP API of its own process, like ``genisys apply``
(same validation, same audit trail, where it shows as "sidecar"). A folder
with a broken manifest is not applied at all: the last good state stays in
force, and the error shows in /readyz and /metrics until the folder is fixed.
"""

import asyncio
import logging
import os
import time

from genisys.errors import ConfigError, GenisysError
from genisys.manifests import apply as applying
from genisys.manifests.client import Client
from genisys.manifests.load import find_files

log = logging.getLogger("genisys.sidecar")

PENDING, SYNCED, ERROR = "Pending", "Synced", "Error"
#: Name of the sidecar's own API token in the audit trail.
TOKEN_NAME = "sidecar"


def manager_of(folder):
    """The managedBy of what a folder applies: its real path, so that two sidecars
    on two folders never prune each other's objects."""
    return ("sidecar:" + os.path.realpath(folder))[:253]


def signature(folder):
    """What changes whenever a manifest in the folder does: path, inode, size and
    modification time of every manifest file (symlinks followed)."""
    entries = []
    for path in find_files(folder):
        try:
            st = os.stat(path)
        except OSError:  # removed while we looked: the next poll sees it settled
            continue
        entries.append((path, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(entries)


class ManifestSync:
    """Applies ``folder`` through ``make_client()`` (a genisys.manifests.Client)."""

    def __init__(self, folder, *, interval, make_client, metrics=None):
        self.folder = folder
        self.interval = interval
        self.make_client = make_client
        self.metrics = metrics
        self.manager = manager_of(folder)
        self.state = PENDING
        self.last_error = None
        self.last_sync = None
        self.objects = 0
        self._signature = None

    @property
    def ready(self):
        """Ready once the folder has been in force at least once."""
        return self.last_sync is not None

    def status(self):
        status = {"state": self.state, "folder": self.folder, "objects": self.objects}
        if self.last_sync is not None:
            status["lastSync"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_sync))
        if self.last_error:
            status["lastError"] = self.last_error
        return status

    def sync(self):
        """Apply the folder once (blocking: run it in a thread). True if it is in force."""
        try:
            with self.make_client() as client:
                steps = applying.plan(client, [self.folder], manager=self.manager, prune=True)
                changed = []
                applying.apply(client, steps, report=lambda step: changed.append(step)
                               if step.action != applying.UNCHANGED else None)
        except ConfigError as e:  # a broken manifest (every problem), or no folder
            return self._failed(e.message)
        except GenisysError as e:  # refused by the API, or it can't be reached
            return self._failed(str(e))
        for step in changed:
            log.info("manifests: %s %s", step.ref, applying.DONE[step.action])
        if self.state != SYNCED:
            log.info("manifests in %s are in force (%d objects)", self.folder,
                     sum(1 for s in steps if s.action != applying.PRUNE))
        self.state, self.last_error, self.last_sync = SYNCED, None, time.time()
        self.objects = sum(1 for s in steps if s.action != applying.PRUNE)
        self._count("success")
        return True

    def _failed(self, message):
        if message != self.last_error:
            log.error("manifests in %s not applied (the last good state stays in force): %s",
                      self.folder, message)
        self.state, self.last_error = ERROR, message
        self._count("error")
        return False

    def _count(self, result):
        if self.metrics is not None:
            self.metrics.manifest_syncs.labels(result).inc()
            self.metrics.manifests_in_sync.set(1 if self.state == SYNCED else 0)
            self.metrics.manifest_objects.set(self.objects)
            if self.last_sync is not None:
                self.metrics.manifests_last_sync.set(self.last_sync)

    async def run(self):
        """Apply at start, then whenever the folder changes; a failed attempt (a broken
        manifest, a compute still in use by services being pruned, genisys busy) is
        tried again every interval until it succeeds."""
        while True:
            try:
                current = await asyncio.to_thread(signature, self.folder)
            except ConfigError as e:  # the folder is gone (being remounted?)
                self._failed(e.message)
                current = None
            if current is not None and (current != self._signature or self.state != SYNCED):
                self._signature = current
                await asyncio.to_thread(self.sync)
            await asyncio.sleep(self.interval)


def own_client_factory(*, port, bind, tls, token):
    """Clients of this process's own API: over loopback when listening on every
    address, with the sidecar's token, without certificate checks (it is us)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(bind, bind)
    if ":" in host:
        host = "[%s]" % host
    server = "%s://%s:%d" % ("https" if tls else "http", host, port)

    def make_client():
        return Client(server, token=token, verify=False, timeout=30.0,
                      user_agent="genisys-sidecar")
    return make_client
