"""The work a benchmark asks for, and how it sees that the work is done.

* ``seed_store``: writes computes and service intents straight into a SQLite
  store, through genisys' own service layer (``genisys.intents.Intents``, the
  code the API calls, so every intent is validated and stored exactly as an
  API write would), *before* the controller starts. Writing 10,000 intents
  through the API would take seconds of its own and mix API throughput into
  the convergence figure; this way the controller starts with every intent
  present and none converged.
* ``StatusReader``: reads the status records the controller writes, from the
  same SQLite file through a second connection (WAL readers never block the
  writer). One SQL query counts the converged pairs; polling the API for
  10,000 services would load the very controller being measured.
* ``sequential_baseline``: the original genisys poller's algorithm.
"""

import asyncio
import sqlite3
import time

import requests

from genisys.intents import Intents
from genisys.model import Compute
from genisys.store import store_from_url

#: Intents written concurrently at a time: enough to fill the store's group commits.
_SEED_CHUNK = 1000


def service_name_template(count, prefix="svc"):
    """``str.format`` template of the names of ``count`` services: ``{key}`` is the index."""
    return "%s-{key:0%dd}" % (prefix, max(5, len(str(max(count - 1, 0)))))


def service_names(count, prefix="svc"):
    template = service_name_template(count, prefix)
    return [template.format(key=i) for i in range(count)]


def compute_names(count):
    return ["c%d" % i for i in range(count)]


async def _seed(path, computes, services, number):
    store = store_from_url("sqlite:///" + path)
    await store.open()
    try:
        intents = Intents(store, max_replicas=max(number, 1), max_services=None)
        for name, url in computes.items():
            await intents.put_compute(Compute(name=name, connector=url))
        replicas = {name: number for name in computes}
        for start in range(0, len(services), _SEED_CHUNK):
            await asyncio.gather(*(intents.put_service(name, replicas)
                                   for name in services[start:start + _SEED_CHUNK]))
    finally:
        await store.close()


def seed_store(path, *, computes, services=(), number=1):
    """Create the SQLite store at ``path`` holding ``computes`` ({name: connector URL})
    and one service per name of ``services`` wanting ``number`` resources on each."""
    asyncio.run(_seed(path, dict(computes), list(services), number))


class StatusReader:
    """Counts converged pairs in the status records of a controller's SQLite store.

    Reads the ``kv`` table the way ``tests/support.intents_dump`` does: status
    records are ``status/<service>`` keys holding ``{"computes": {compute: entry}}``."""

    _CONVERGED = (
        "SELECT COUNT(*) FROM kv, json_each(kv.value, '$.computes') AS pair "
        "WHERE kv.key >= 'status/' AND kv.key < 'status0' "
        "AND json_extract(pair.value, '$.condition') = 'Converged' "
        "AND json_extract(pair.value, '$.running') = ?")

    def __init__(self, path):
        self._conn = sqlite3.connect(path, timeout=30, isolation_level=None)

    def converged_pairs(self, running):
        """Pairs reported Converged with ``running`` resources."""
        return self._conn.execute(self._CONVERGED, (running,)).fetchone()[0]

    def close(self):
        self._conn.close()


def wait_converged(reader, *, pairs, running, since, timeout, controller):
    """Poll until ``pairs`` pairs are Converged at ``running``; returns the seconds since
    ``since`` (a time.monotonic()) when they were, or None after ``timeout`` seconds.

    Polls often at first (small runs converge in a fraction of a second) and at most
    four times a second later (each poll is a query over every status record)."""
    while True:
        now = time.monotonic()
        done = reader.converged_pairs(running)
        if done >= pairs:
            return now - since, done
        if not controller.alive():
            raise RuntimeError("the controller exited during the run; its log:\n%s"
                               % controller.log_tail())
        if now - since > timeout:
            return None, done
        time.sleep(min(0.25, max(0.02, (now - since) / 40.0)))


def sequential_baseline(connector_urls, services, number, *, timeout=30.0):
    """The original genisys poller: for each service, for each compute, GET its status
    and, if the running count differs, POST a scale order; one request at a time.

    One ``requests.Session`` (keep-alive connections), which only flatters the
    baseline. Returns (seconds, requests made)."""
    made = 0
    started = time.monotonic()
    with requests.Session() as session:
        for service in services:
            for url in connector_urls:
                answer = session.get("%s/service/%s/status" % (url, service), timeout=timeout)
                answer.raise_for_status()
                made += 1
                if answer.json()["running_resources"] != number:
                    session.post("%s/service/%s/scale" % (url, service),
                                 json={"number": number}, timeout=timeout).raise_for_status()
                    made += 1
    return time.monotonic() - started, made
