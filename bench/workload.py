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
import base64
import json
import sqlite3
import time

import requests

from genisys.intents import Intents
from genisys.model import Compute, ServiceUpdate
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


async def _seed(store_url, security, computes, services, number, placement, per_compute):
    store = store_from_url(store_url, **({"etcd_security": security} if security else {}))
    await store.open()
    try:
        intents = Intents(store, max_replicas=max(number, 1), max_services=None)
        for name, url in computes.items():
            await intents.put_compute(Compute(name=name, connector=url))
        replicas, metadata = {name: number for name in computes}, None
        if placement is not None:
            # What PUT /service/<name> {"replicas": N, "placement": {...}} stores.
            replicas = number
            metadata = ServiceUpdate.model_validate({"replicas": number,
                                                     "placement": placement})
        for start in range(0, len(services), _SEED_CHUNK):
            await asyncio.gather(*(intents.put_service(
                name, per_compute[name] if per_compute is not None else replicas,
                metadata=metadata) for name in services[start:start + _SEED_CHUNK]))
    finally:
        await store.close()


def seed_store(store, *, computes, services=(), number=1, placement=None, per_compute=None,
               security=None):
    """Create the store ``store`` (a SQLite file's path, or a store URL such as
    ``etcd://...``, with its ``security``) holding ``computes`` ({name: connector URL})
    and one service per name of ``services`` wanting ``number`` resources on each;
    with a ``placement`` (its JSON form), a total of ``number`` that genisys places;
    with ``per_compute`` ({service: {compute: count}}), those counts instead."""
    url = store if "://" in store else "sqlite:///" + store
    asyncio.run(_seed(url, security, dict(computes), list(services), number, placement,
                      per_compute))


class StatusReader:
    """Counts converged pairs in the status records of a controller's SQLite store.

    Reads the ``kv`` table the way ``tests/support.intents_dump`` does: status
    records are ``status/<service>`` keys holding ``{"computes": {compute: entry}}``."""

    _CONVERGED = (
        "SELECT COUNT(*) FROM kv, json_each(kv.value, '$.computes') AS pair "
        "WHERE kv.key >= 'status/' AND kv.key < 'status0' "
        "AND json_extract(pair.value, '$.condition') = 'Converged' "
        "AND json_extract(pair.value, '$.running') = ?")

    #: Placed services with an assignment; those whose whole total is assigned and
    #: every compute of whose assignment is Converged at its count; and those computes.
    _PLACED = (
        "SELECT COALESCE(SUM(has), 0), COALESCE(SUM(has AND whole AND done = of), 0), "
        "COALESCE(SUM(done), 0) FROM ("
        " SELECT json_type(kv.value, '$.placement.assignment') IS NOT NULL AS has,"
        " COALESCE(json_extract(kv.value, '$.placement.placed')"
        "          = json_extract(kv.value, '$.placement.total'), 0) AS whole,"
        " (SELECT COUNT(*) FROM json_each(kv.value, '$.placement.assignment') AS a"
        "  WHERE json_extract(kv.value, '$.computes.\"' || a.key || '\".condition') = 'Converged'"
        "  AND json_extract(kv.value, '$.computes.\"' || a.key || '\".running') = a.value"
        "  AND json_extract(kv.value, '$.computes.\"' || a.key || '\".desired') = a.value) AS done,"
        " (SELECT COUNT(*) FROM json_each(kv.value, '$.placement.assignment')) AS of"
        " FROM kv WHERE kv.key >= 'status/' AND kv.key < 'status0')")

    def __init__(self, path):
        self._conn = sqlite3.connect(path, timeout=30, isolation_level=None)

    def converged_pairs(self, running):
        """Pairs reported Converged with ``running`` resources."""
        return self._conn.execute(self._CONVERGED, (running,)).fetchone()[0]

    def pairs_at_desired(self):
        """Pairs reported Converged with as many running as desired (above 0)."""
        return self._conn.execute(
            "SELECT COUNT(*) FROM kv, json_each(kv.value, '$.computes') AS pair "
            "WHERE kv.key >= 'status/' AND kv.key < 'status0' "
            "AND json_extract(pair.value, '$.condition') = 'Converged' "
            "AND json_extract(pair.value, '$.desired') > 0 "
            "AND json_extract(pair.value, '$.running') = json_extract(pair.value, '$.desired')"
        ).fetchone()[0]

    def placed(self):
        """What the status records say of placed services: {"assigned": services with
        an assignment, "converged": services whose whole total is assigned and every
        compute of whose assignment is Converged at (desired and running) its count,
        "pairs": (compute, service) pairs of assignments so converged}."""
        assigned, converged, pairs = self._conn.execute(self._PLACED).fetchone()
        return {"assigned": assigned, "converged": converged, "pairs": pairs}

    def assignments(self):
        """{service: its status.placement.assignment}, of every placed service that has one."""
        return {key[len("status/"):]: json.loads(assignment) for key, assignment in
                self._conn.execute(
                    "SELECT key, json_extract(value, '$.placement.assignment') FROM kv"
                    " WHERE key >= 'status/' AND key < 'status0'"
                    " AND json_type(value, '$.placement.assignment') IS NOT NULL")}

    def assigned_per_compute(self):
        """{compute: resources the placed services' assignments put there}."""
        return dict(self._conn.execute(
            "SELECT a.key, SUM(a.value) FROM kv, json_each(kv.value, '$.placement.assignment')"
            " AS a WHERE kv.key >= 'status/' AND kv.key < 'status0' GROUP BY a.key"
            " ORDER BY a.key").fetchall())

    def close(self):
        self._conn.close()


class EtcdStatusReader:
    """``StatusReader.converged_pairs`` of a controller's etcd store: one range read of
    every status record under ``prefix`` per poll, through etcd's JSON gateway (with the
    cluster's TLS files, if it has TLS; ``member`` is a ``tests.etcd.EtcdMember``)."""

    def __init__(self, member, prefix):
        self._member = member
        self._key = (prefix + "status/").encode("utf-8")

    def converged_pairs(self, running):
        end = self._key[:-1] + bytes([self._key[-1] + 1])
        answer = self._member.call("/v3/kv/range", {
            "key": base64.b64encode(self._key).decode("ascii"),
            "range_end": base64.b64encode(end).decode("ascii")})
        done = 0
        for kv in answer.get("kvs") or []:
            status = json.loads(base64.b64decode(kv["value"]))
            done += sum(1 for entry in status.get("computes", {}).values()
                        if entry.get("condition") == "Converged"
                        and entry.get("running") == running)
        return done

    def close(self):
        pass


def wait_converged(done_count, *, wanted, since, timeout, controller):
    """Poll until ``done_count()`` (e.g. the pairs Converged, from a StatusReader) reaches
    ``wanted``; returns (the seconds since ``since`` (a time.monotonic()) when it did, or
    None after ``timeout`` seconds; the last count).

    Polls often at first (small runs converge in a fraction of a second) and at most
    four times a second later (each poll is a query over every status record)."""
    while True:
        now = time.monotonic()
        done = done_count()
        if done >= wanted:
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
