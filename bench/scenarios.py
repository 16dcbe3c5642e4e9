"""The measurements, one function each; every one returns a plain dict for the JSON.

a. ``convergence``: N services x M computes, all wanting 1 resource on every
   compute of fresh simulated connectors (running 0): every pair needs a
   change. From the controller's spawn (intents already in the store) to
   every pair Converged in the store's status records.
b. ``baseline``: the same work by the original poller's sequential loop.
c. ``steady_state``: a controller started on a store (and connectors) where
   all of it has already converged; measured over exactly one poll interval,
   aligned on the first periodic resync.
d. ``api``: upscales, then GETs, then compute writes, by 64 keep-alive clients
   in their own process; and the same requests answered by a tornado handler
   that does no work (``bench/noop.py``), the ceiling they are read against.
e. memory: the RSS figures of ``steady_state`` (a controller holding N x M).
f. ``one_compute``: ``convergence`` and ``baseline`` for N services on a single
   compute, where how many calls genisys keeps in flight decides everything.
g. ``memory_burst``: a controller's RSS when idle, and after a burst of
   upscales has been converged.
h. ``placement``: 10,000 placed services (a total of 4 each, Spread over 8
   computes, batch extension): from the controller's spawn to every
   service's assignment Converged, and the CPU its placement decisions took
   (its own counters).
i. ``etcd``: ``api`` and a convergence run on one local etcd member, without TLS
   and with TLS and a client certificate, beside the SQLite figures of the run.

``Protocol`` says how a variant of the connector protocol is set up (the
arguments of the connectors and of the controller); a protocol genisys does
not speak yet is listed with the reason, and its targets print n/a.
"""

import collections
import dataclasses
import json
import os
import statistics
import time
from typing import Optional

import requests
import tornado

from bench import procs
from bench.workload import (
    EtcdStatusReader,
    StatusReader,
    compute_names,
    seed_store,
    sequential_baseline,
    service_name_template,
    service_names,
    wait_converged,
)

LOADGEN_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loadgen.py")


@dataclasses.dataclass(frozen=True)
class Protocol:
    """One way genisys and its connectors can talk."""

    name: str
    #: Why this protocol cannot be measured (None: it can).
    unavailable: Optional[str] = None
    #: Extra arguments of every simulated connector (e.g. to offer a capability).
    connector_args: tuple = ()
    #: Extra arguments of the controller.
    controller_args: tuple = ()


PROTOCOLS = {
    # The seed's protocol: GET status and POST scale, one (service, compute) per call. The
    # connectors are told not to offer the batch extension, so genisys can't use it.
    "per-service": Protocol("per-service", connector_args=("--no-batch",)),
    # Issue 7, part 2: many statuses in one call (POST /batch/status), many scale orders
    # in one call (POST /batch/scale). The bundled connectors offer it by default
    # (GET /capabilities), and genisys uses it when offered.
    "batch": Protocol("batch"),
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every measurement of one run shares (see ``bench --help``)."""

    workdir: str
    #: Computes (each its own simulated connector process) per convergence run.
    computes: int = 4
    #: Seconds every simulated connector takes to answer a status or scale call.
    latency: float = 0.020
    #: The controller's poll interval (its full resync), in seconds.
    poll_interval: float = 15.0
    #: Seconds a convergence run may take before it is reported as not converged.
    timeout: float = 600.0
    api_clients: int = 64
    api_duration: float = 10.0
    api_warmup: float = 1.0
    #: Runs of the API's upscales, closed and due at a rate, one after another: a run's
    #: figures swing widely on a small shared machine, the median run's much less.
    api_rounds: int = 3
    #: Services the API benchmark spreads its upscales over.
    api_keys: int = 1000
    #: f. services on the single compute.
    one_compute_services: int = 1000
    #: g. the burst of upscales: clients, seconds, services.
    burst_clients: int = 16
    burst_duration: float = 10.0
    burst_services: int = 50
    #: h. placed services, each a total of ``placement_total`` Spread over
    #: ``placement_computes`` computes: 40,000 resources, as a's 10,000 x 4.
    placement_services: int = 10000
    placement_total: int = 4
    placement_computes: int = 8
    #: h. the poll interval of the placed run and its twin: longer than either takes, so
    #: that no resync lands in one and not in the other (c measures what a resync costs).
    placement_poll_interval: float = 120.0
    #: Extra flags for every controller (e.g. "--reconciler-workers=64").
    controller_args: tuple = ()


def _controller_args(settings, protocol, poll_interval=None):
    poll_interval = settings.poll_interval if poll_interval is None else poll_interval
    return (("--poll-interval", "%gs" % poll_interval) + tuple(settings.controller_args)
            + tuple(protocol.controller_args))


def _cpu(children):
    return sum(procs.cpu_seconds(c.pid) for c in children)


def _sample(pid):
    return {"cpu_seconds": procs.cpu_seconds(pid), **procs.memory_mb(pid)}


# -- a. convergence -------------------------------------------------------------------


def _fresh_computes(fleet, settings, protocol, count):
    """(connectors, {compute name: URL}): ``count`` fresh simulated connectors."""
    connectors = fleet.connectors(count, latency=settings.latency, args=protocol.connector_args)
    return connectors, dict(zip(compute_names(count), (c.url for c in connectors)))


def _seed_timed(db, **seed):
    """``seed_store(db, **seed)``; returns the seconds it took."""
    seeding = time.monotonic()
    seed_store(db, **seed)
    return time.monotonic() - seeding


def _until_converged(fleet, settings, protocol, db, connectors, *, count, wanted,
                     profile_to=None, read=None, reader=None, store_args=(),
                     poll_interval=None):
    """Spawn a controller on the seeded ``db`` and poll ``count(reader, controller)`` (a
    StatusReader on ``db``, unless another ``reader`` is given: for a store that is not
    SQLite, whose URL ``db`` then is, with ``store_args``) until it reaches ``wanted``;
    then stop the controller (not the connectors). Returns the figures every
    convergence run reports, with ``done`` (the last count) and ``read``: what
    ``read(reader, controller)`` returned once converged (or timed out), before the
    controller stopped."""
    before = procs.connector_requests(connectors)
    connectors_cpu = _cpu(connectors)
    reader = reader or StatusReader(db)
    controller = fleet.controller(db, args=_controller_args(settings, protocol, poll_interval)
                                  + tuple(store_args), profile_to=profile_to)
    try:
        controller.wait_listening()
        seconds, done = wait_converged(lambda: count(reader, controller), wanted=wanted,
                                       since=controller.spawned_at, timeout=settings.timeout,
                                       controller=controller)
        sample = _sample(controller.pid)
        connectors_cpu = _cpu(connectors) - connectors_cpu
        timings = procs.controller_timings(controller)
        extra = read(reader, controller) if read else None
    finally:
        reader.close()
    made = procs.requests_between(before, procs.connector_requests(connectors))
    fleet.stop(controller)
    startup = controller.listening_at - controller.spawned_at
    return {"converged": seconds is not None, "done": done, "read": extra,
            "seconds": seconds, "startup_seconds": startup,
            "reconcile_seconds": None if seconds is None else seconds - startup,
            "requests": made, "requests_total": made["status"] + made["scale"],
            "cpu_seconds": sample["cpu_seconds"], "connectors_cpu_seconds": connectors_cpu,
            "peak_rss_mb": sample["peak"], "rss_mb": sample["rss"], "timings": timings}


def convergence(fleet, settings, protocol, services, *, keep=False, profile_to=None):
    """Returns (result, kept): ``kept`` is (store path, connectors) when ``keep``, for the
    steady-state run, else None and everything is stopped."""
    connectors, computes = _fresh_computes(fleet, settings, protocol, settings.computes)
    db = os.path.join(settings.workdir, "converge-%s-%dx%d%s.db"
                      % (protocol.name, services, settings.computes,
                         "-profiled" if profile_to else ""))
    seed_seconds = _seed_timed(db, computes=computes, services=service_names(services),
                               number=1)
    pairs = services * settings.computes
    run = _until_converged(fleet, settings, protocol, db, connectors, wanted=pairs,
                           count=lambda reader, _: reader.converged_pairs(1),
                           profile_to=profile_to)
    done, seconds = run.pop("done"), run["seconds"]
    del run["read"]
    result = {
        "protocol": protocol.name, "services": services, "computes": settings.computes,
        "pairs": pairs, "latency_ms": settings.latency * 1000.0, "pairs_converged": done,
        **run,
        "ms_per_pair": None if seconds is None
        else (seconds - run["startup_seconds"]) * 1000.0 / pairs,
        "seed_seconds": seed_seconds,
        "write_path": "store (genisys.intents, before the controller starts)",
    }
    if keep:
        return result, (db, connectors)
    fleet.stop(*connectors)
    return result, None


# -- b. baseline ------------------------------------------------------------------------


def baseline(fleet, settings, services):
    connectors = fleet.connectors(settings.computes, latency=settings.latency)
    before = procs.connector_requests(connectors)
    connectors_cpu = _cpu(connectors)
    seconds, made = sequential_baseline([c.url for c in connectors], service_names(services), 1)
    connectors_cpu = _cpu(connectors) - connectors_cpu
    counted = procs.requests_between(before, procs.connector_requests(connectors))
    fleet.stop(*connectors)
    return {"services": services, "computes": settings.computes,
            "pairs": services * settings.computes, "latency_ms": settings.latency * 1000.0,
            "seconds": seconds, "requests_total": made, "requests": counted,
            "connectors_cpu_seconds": connectors_cpu, "extrapolated_from": None}


def extrapolate_baseline(measured, services):
    """The sequential loop's time is linear in the pairs it walks."""
    factor = services / measured["services"]
    return dict(measured, services=services, pairs=measured["pairs"] * factor,
                seconds=measured["seconds"] * factor,
                requests_total=int(measured["requests_total"] * factor),
                requests={k: int(v * factor) for k, v in measured["requests"].items()},
                connectors_cpu_seconds=measured["connectors_cpu_seconds"] * factor,
                extrapolated_from=measured["services"])


# -- c. steady state (and e. memory) -------------------------------------------------------


def _sleep_until(moment, controller):
    while True:
        left = moment - time.monotonic()
        if left <= 0:
            return
        if not controller.alive():
            raise RuntimeError("the controller exited during the steady-state run; its log:\n"
                               + controller.log_tail())
        time.sleep(min(left, 0.5))


def steady_state(fleet, settings, protocol, services, db, connectors):
    """A controller started on ``db``, where all ``services`` x computes have converged.

    Its resync timer starts with it: resyncs happen about ``poll_interval`` after it
    listens, and every interval after that. Two windows, each one interval long:

    * restart pass [listening, first resync): listing everything at start queues
      every service, i.e. one full pass, start-up work included;
    * resync [first resync, second resync): one periodic full resync, and the idle
      time around it: what nothing changing costs per interval.

    If a resync takes longer than the interval, the window holds part of one (or
    parts of two); ``cpu_per_full_resync`` scales the CPU to one status check of every
    pair."""
    interval = settings.poll_interval
    pairs = services * settings.computes
    controller = fleet.controller(db, args=_controller_args(settings, protocol))
    reader = StatusReader(db)
    try:
        controller.wait_listening()
        start = controller.listening_at
        samples = [(_sample(controller.pid), procs.connector_requests(connectors))]
        for k in (1, 2):
            # Half a second before each resync is due: the window takes it whole.
            _sleep_until(start + k * interval - 0.5, controller)
            samples.append((_sample(controller.pid), procs.connector_requests(connectors)))
        still_converged = reader.converged_pairs(1)
    finally:
        reader.close()
    fleet.stop(controller)

    def window(a, b):
        made = procs.requests_between(samples[a][1], samples[b][1])
        cpu = samples[b][0]["cpu_seconds"] - samples[a][0]["cpu_seconds"]
        return {"cpu_seconds": cpu, "requests": made,
                "requests_total": made["status"] + made["scale"],
                "complete": made["status"] >= pairs,
                "cpu_per_full_resync": cpu * pairs / made["status"] if made["status"] else None}

    return {"protocol": protocol.name, "services": services, "computes": settings.computes,
            "pairs": pairs, "poll_interval": interval, "pairs_converged": still_converged,
            "restart_pass": window(0, 1), "resync": window(1, 2),
            "rss_mb": samples[-1][0]["rss"], "peak_rss_mb": samples[-1][0]["peak"]}


# -- d. API -----------------------------------------------------------------------------


def _load(fleet, settings, server, *, method, path, body=None, keys, clients=None,
          duration=None, warmup=None, rate=None):
    """What the load generator measured of ``method path`` against ``server``."""
    clients = settings.api_clients if clients is None else clients
    duration = settings.api_duration if duration is None else duration
    warmup = settings.api_warmup if warmup is None else warmup
    output = os.path.join(settings.workdir, "loadgen-%s-%d.json" % (method.lower(),
                                                                    time.monotonic_ns()))
    argv = [LOADGEN_PY, "--url", server.url, "--method", method, "--path", path,
            "--keys", str(keys), "--clients", str(clients), "--duration", str(duration),
            "--warmup", str(warmup), "--output", output]
    if body is not None:
        argv += ["--body", body]
    if rate is not None:
        argv += ["--rate", "%.1f" % rate]
    loadgen = fleet.python(argv, name="loadgen")
    status = loadgen.proc.wait(warmup + duration + 120)
    fleet.stop(loadgen)
    if status != 0:
        raise RuntimeError("the load generator failed (%s):\n%s" % (status, loadgen.log_tail()))
    with open(output, encoding="utf-8") as f:
        return json.load(f)


#: The body of every compute write: a new connector address each time, so each is a
#: real change (``{key}`` is the load generator's counter; no service uses c1).
COMPUTE_WRITE_BODY = '{"connector": "http://127.0.0.1:9/{key}"}'
UPSCALE_BODY = json.dumps({"compute": "c0"})


def ceiling(fleet, settings):
    """The same GETs and writes, answered by a tornado handler that does no work
    (``bench/noop.py``, on plain asyncio): the most a tornado server answers here."""
    noop = fleet.noop()
    noop.wait_listening()
    path = "/service/" + service_name_template(settings.api_keys, prefix="api")
    try:
        get = _load(fleet, settings, noop, method="GET", path=path, keys=settings.api_keys)
        write = _load(fleet, settings, noop, method="PUT", path="/compute/c1",
                      body=COMPUTE_WRITE_BODY, keys=2 ** 62)
    finally:
        fleet.stop(noop)
    return {"server": "tornado %s, a handler that answers {} (plain asyncio)"
            % tornado.version, "get": get, "write": write}


def _one_compute_controller(fleet, settings, store_name, *, store=None):
    """(connector, controller): a simulated connector (per-service protocol) as compute
    c0 of a fresh store named ``store_name`` (a SQLite file), or of ``store`` (an
    ``EtcdBench``), and a controller on it, listening."""
    protocol = PROTOCOLS["per-service"]
    [connector] = fleet.connectors(1, latency=settings.latency, args=protocol.connector_args)
    if store is None:
        db, args, security = os.path.join(settings.workdir, store_name), (), None
    else:
        db, args, security = store.url(store_name), store.args, store.security
    seed_store(db, computes={"c0": connector.url}, security=security)
    controller = fleet.controller(db, args=_controller_args(settings, protocol) + args)
    controller.wait_listening()
    return connector, controller


def api(fleet, settings, *, store=None, upscale_rate=None):
    """Upscales spread over ``api_keys`` services on one compute, then GETs of them,
    then GETs of /healthz, then compute writes, against a controller on the default
    durable SQLite store (or on ``store``, an ``EtcdBench``: then without the ceiling,
    taken once a run, nor /healthz).
    The compute's simulated connector is real: the reconciler converges the upscales
    while they arrive, as it would in production. ``upscale_rate``: after the GETs,
    upscales again, due at that steady rate (an open loop), for their latency at
    that rate rather than at the most the store takes: a function of the first
    upscales' figures that gives the rate."""
    connector, controller = _one_compute_controller(fleet, settings, "api.db", store=store)
    path = "/service/" + service_name_template(settings.api_keys, prefix="api")

    def cpu_now():  # the controller's, and the store's own process (etcd) if it has one
        return procs.cpu_seconds(controller.pid), store.cpu_seconds() if store else 0.0

    def upscales(rate=None):
        figures = _load(fleet, settings, controller, method="POST", path=path + "/upscale",
                        body=UPSCALE_BODY, keys=settings.api_keys, rate=rate)
        # Their own work ends when the reconciler has converged them: waited for, so
        # that what comes next (a GET, another run) measures its own work, not this
        # catch-up, which counts as the upscales'.
        figures["converged_after_seconds"] = _converged_after(controller, settings.api_keys)
        return figures

    cpu = [cpu_now()]
    upscale = _median_run([upscales() for _ in range(settings.api_rounds)])
    cpu.append(cpu_now())

    def stored_total():
        listed = requests.get(controller.url + "/service", timeout=120).json()
        return sum(view["replicas"].get("c0", 0) for view in listed.values())
    stored = stored_total()
    get = _load(fleet, settings, controller, method="GET", path=path, keys=settings.api_keys)
    cpu.append(cpu_now())
    # genisys' own floor: /healthz does nothing but what every request of the API goes
    # through (routing, genisys' checks of the request, the answer's headers). Read
    # against the ceiling, it shows how much of a gap is the endpoint's own work.
    health = None
    if store is None:
        health = _load(fleet, settings, controller, method="GET", path="/healthz", keys=1)
    cpu.append(cpu_now())
    paced = None
    if upscale_rate is not None:
        rate = upscale_rate(upscale)
        paced = _median_run([upscales(rate) for _ in range(settings.api_rounds)])
        paced["stored_total"] = stored_total() - stored
        paced["totals_match"] = paced["stored_total"] == paced["total_ok"]
    cpu.append(cpu_now())
    compute_writes = _load(fleet, settings, controller, method="PUT", path="/compute/c1",
                           body=COMPUTE_WRITE_BODY, keys=2 ** 62)
    cpu.append(cpu_now())
    memory = procs.memory_mb(controller.pid)
    fleet.stop(controller, connector)
    for i, phase in enumerate((upscale, get, health, paced, compute_writes)):
        if phase is None:
            continue
        used, store_used = (b - a for a, b in zip(cpu[i], cpu[i + 1]))
        phase["controller_cpu_seconds"] = used
        phase["controller_cpu_ms_per_request"] = (used * 1000.0 / phase["total_requests"]
                                                  if phase["total_requests"] else None)
        if store is not None:
            phase["store_cpu_ms_per_request"] = (store_used * 1000.0 / phase["total_requests"]
                                                 if phase["total_requests"] else None)
    return {"store": "sqlite (durable: WAL, synchronous=FULL)" if store is None
            else store.describe(), "clients": settings.api_clients,
            "upscale": upscale, "get": get, "health": health,
            "compute_writes": compute_writes,
            "upscale_paced": paced,
            "ceiling": ceiling(fleet, settings) if store is None else None,
            "stored_total": stored,
            "upscales_answered_2xx": upscale["total_ok"],
            "totals_match": stored == upscale["total_ok"],
            "controller_rss_mb": memory["rss"]}


#: A load generator's figures that describe one run's speed: of several runs, the median
#: of each is kept (``_median_run``).
_MEDIAN_FIGURES = ("requests_per_second", "ok_per_second", "p50_ms", "p90_ms", "p99_ms",
                   "max_ms", "loadgen_cpu_share")
#: ... and those that count what was sent: summed (totals checked against the store,
#: CPU per request).
_SUMMED_FIGURES = ("seconds", "requests", "ok", "total_requests", "total_ok",
                   "loadgen_cpu_seconds")


def _median_run(runs):
    """The figures of ``runs`` (a load generator's, of the same load one after another)
    as one: the median of each speed figure, the sum of each count, the longest wait for
    convergence; and each run's own under ``runs``."""
    combined = dict(runs[0])
    for key in _MEDIAN_FIGURES:
        values = [run[key] for run in runs if run.get(key) is not None]
        combined[key] = statistics.median(values) if values else None
    for key in _SUMMED_FIGURES:
        combined[key] = sum(run[key] for run in runs)
    for key in ("codes", "transport_errors"):  # every run's answers and failures
        combined[key] = dict(sum((collections.Counter(run[key]) for run in runs),
                                 collections.Counter()))
    waits = [run.get("converged_after_seconds") for run in runs]
    combined["converged_after_seconds"] = None if None in waits else max(waits)
    combined["runs"] = [{key: run.get(key) for key in
                         ("ok_per_second", "p50_ms", "p99_ms", "converged_after_seconds")}
                        for run in runs]
    return combined


def _all_converged(controller, services):
    """True when every service's status says Converged at its replicas on c0."""
    listed = requests.get(controller.url + "/service", timeout=120).json()
    if len(listed) < services:
        return False
    for view in listed.values():
        entry = view["status"].get("computes", {}).get("c0", {})
        if entry.get("condition") != "Converged" \
                or entry.get("running") != view["replicas"].get("c0"):
            return False
    return True


def _converged_after(controller, services, *, timeout=300.0):
    """Seconds until every service's status says Converged at its replicas on c0 (None:
    not within ``timeout``), looked at every 0.2 s."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if _all_converged(controller, services):
            return time.monotonic() - started
        time.sleep(0.2)
    return None


# -- f. one compute ------------------------------------------------------------------------


def one_compute(fleet, settings):
    """N services wanting 1 resource on a single compute (per-service protocol): one
    connector, so the calls genisys keeps in flight to it decide the time; and the
    sequential baseline of the same work."""
    single = dataclasses.replace(settings, computes=1)
    n = settings.one_compute_services
    row, _ = convergence(fleet, single, PROTOCOLS["per-service"], n)
    return {"convergence": row, "baseline": baseline(fleet, single, n)}


# -- g. memory after a burst of upscales ----------------------------------------------------


def memory_burst(fleet, settings, *, settle=5.0, timeout=300.0):
    """RSS of a controller idle, then after ``burst_duration`` s of upscales by
    ``burst_clients`` clients over ``burst_services`` services (a simulated connector),
    once the reconciler has converged them all, and ``settle`` s after that: what
    the burst left held."""
    connector, controller = _one_compute_controller(fleet, settings, "burst.db")
    time.sleep(settle)
    idle = procs.memory_mb(controller.pid)
    path = "/service/" + service_name_template(settings.burst_services, prefix="burst")
    burst = _load(fleet, settings, controller, method="POST", path=path + "/upscale",
                  body=UPSCALE_BODY, keys=settings.burst_services,
                  clients=settings.burst_clients, duration=settings.burst_duration, warmup=0)
    after_burst = procs.memory_mb(controller.pid)
    started = time.monotonic()
    converged = False
    while time.monotonic() - started < timeout:
        converged = _all_converged(controller, settings.burst_services)
        if converged:
            break
        time.sleep(0.5)
    converge_seconds = time.monotonic() - started
    time.sleep(settle)
    settled = procs.memory_mb(controller.pid)
    fleet.stop(controller, connector)
    return {"clients": settings.burst_clients, "seconds": settings.burst_duration,
            "services": settings.burst_services, "upscales_ok": burst["total_ok"],
            "upscales_per_second": burst["ok_per_second"], "converged": converged,
            "converge_seconds_after_burst": converge_seconds,
            "idle_rss_mb": idle["rss"], "after_burst_rss_mb": after_burst["rss"],
            "settled_rss_mb": settled["rss"], "peak_rss_mb": settled["peak"],
            "held_mb": settled["rss"] - idle["rss"]}


# -- h. placement ----------------------------------------------------------------------------


def placement(fleet, settings):
    """``placement_services`` placed services, each a total of ``placement_total`` Spread
    over ``placement_computes`` fresh simulated connectors (batch extension), seeded
    before the controller starts, as in ``convergence``. Measured: the seconds from
    the spawn to every service's assignment Converged (its status records); the
    controller's placement counters (genisys_placement_cpu_seconds_total,
    genisys_placements_total) at the first poll that sees every service with an
    assignment (its first decisions), and once converged."""
    protocol = PROTOCOLS["batch"]
    services = settings.placement_services
    connectors, computes = _fresh_computes(fleet, settings, protocol,
                                           settings.placement_computes)
    spec = {"computes": list(computes), "strategy": "Spread"}
    db = os.path.join(settings.workdir, "placement-%dx%d.db" % (services, len(computes)))
    seed_seconds = _seed_timed(db, computes=computes, services=service_names(services),
                               number=settings.placement_total, placement=spec)
    first = {}

    def converged_services(reader, controller):
        polled = time.monotonic()
        seen = reader.placed()
        if not first and seen["assigned"] >= services:
            # Every service has had its first decision: what the counters say now.
            first.update(procs.controller_placement(controller),
                         seconds=polled - controller.spawned_at,
                         services_converged=seen["converged"])
        return seen["converged"]

    def once_converged(reader, controller):
        return {"counters": procs.controller_placement(controller), "seen": reader.placed(),
                "per_compute": reader.assigned_per_compute(),
                "assignments": reader.assignments()}

    run = _until_converged(fleet, settings, protocol, db, connectors, wanted=services,
                           count=converged_services, read=once_converged,
                           poll_interval=settings.placement_poll_interval)
    fleet.stop(*connectors)
    done, read = run.pop("done"), run.pop("read")
    counters, seen = read["counters"], read["seen"]
    decisions = counters["decisions"]
    if first:
        # The first decision of every service, from the counters at that moment: the
        # decisions counted by then are the first ones and any second passes.
        first["cpu_seconds_first_decisions"] = (
            first["cpu_seconds"] * services / first["decisions"]
            if first["decisions"] else None)
    twin = _per_compute_twin(fleet, settings, protocol, read["assignments"]) \
        if done >= services else None
    return {
        "protocol": protocol.name, "services": services, "total": settings.placement_total,
        "computes": len(computes), "strategy": spec["strategy"],
        "resources": services * settings.placement_total, "latency_ms": settings.latency * 1000.0,
        "services_converged": done, "pairs_converged": seen["pairs"],
        "services_assigned": seen["assigned"], "assigned_per_compute": read["per_compute"],
        **run,
        "placement_cpu_seconds": counters["cpu_seconds"], "decisions": decisions,
        "us_per_decision": counters["cpu_seconds"] * 1e6 / decisions if decisions else None,
        "first_decisions": first or None, "seed_seconds": seed_seconds,
        "poll_interval": settings.placement_poll_interval,
        "per_compute_twin": twin,
    }


def _per_compute_twin(fleet, settings, protocol, assignments):
    """The same services with the counts per compute that the placed run converged to,
    given as per-compute maps on as many fresh computes: the same pairs, connectors and
    batches, without placement. Placed convergence is judged against this run, as it
    differs only by placement (the 4-compute run of a has half the connectors, so
    twice the batch of each call)."""
    connectors, computes = _fresh_computes(fleet, settings, protocol,
                                           settings.placement_computes)
    # _fresh_computes names them c0..cN, as it named the placed run's.
    assert set().union(*assignments.values()) <= set(computes)
    db = os.path.join(settings.workdir, "placement-twin-%dx%d.db" % (len(assignments),
                                                                       len(computes)))
    _seed_timed(db, computes=computes, services=sorted(assignments), per_compute=assignments,
                number=max(max(a.values()) for a in assignments.values()))
    pairs = sum(len(a) for a in assignments.values())
    run = _until_converged(fleet, settings, protocol, db, connectors, wanted=pairs,
                           count=lambda reader, _: reader.pairs_at_desired(),
                           poll_interval=settings.placement_poll_interval)
    fleet.stop(*connectors)
    run.pop("read")
    return {"pairs": pairs, "pairs_converged": run.pop("done"), **run}


# -- i. etcd ------------------------------------------------------------------------------


class EtcdBench:
    """One local etcd member (``tests.etcd``: a fresh data directory, free ports), with
    TLS and a client certificate or without: the store of the etcd measurements. Each
    measurement gets a key prefix of its own."""

    def __init__(self, workdir, *, tls):
        from tests.etcd import EtcdCluster  # the test suite's etcd harness
        self.tls = tls
        self.cluster = EtcdCluster(1, os.path.join(workdir, "etcd-tls" if tls else "etcd"),
                                   tls=tls).start()
        self.security = self.cluster.security() if tls else None
        self.args = tuple(self.cluster.tls.flags()) if tls else ()

    def url(self, name):
        return self.cluster.url(prefix=name.replace(".", "-"))

    def cpu_seconds(self):
        return procs.cpu_seconds(self.cluster.members[0].proc.pid)

    def describe(self):
        member = self.cluster.members[0]
        version = member.call("/v3/maintenance/status", {}).get("version", "?")
        return "etcd %s, one local member%s" % (
            version, ", TLS with a client certificate" if self.tls else "")

    def stop(self):
        self.cluster.stop()


def etcd_available():
    """None if an etcd binary is there, else why the etcd phase cannot run."""
    import shutil
    if shutil.which("etcd") is None:
        return "no etcd binary (bash scripts/ensure-etcd.sh installs Debian's etcd-server)"
    return None


def etcd_convergence(fleet, settings, protocol, services, store):
    """``convergence`` of ``services`` x ``computes`` on ``store`` (an EtcdBench), read
    from etcd's status records."""
    connectors, computes = _fresh_computes(fleet, settings, protocol, settings.computes)
    name = "converge-%s-%dx%d" % (protocol.name, services, settings.computes)
    url = store.url(name)
    seed_seconds = time.monotonic()
    seed_store(url, computes=computes, services=service_names(services), number=1,
               security=store.security)
    seed_seconds = time.monotonic() - seed_seconds
    pairs = services * settings.computes
    reader = EtcdStatusReader(store.cluster.members[0], name.replace(".", "-") + "/")
    run = _until_converged(fleet, settings, protocol, url, connectors, wanted=pairs,
                           count=lambda reader, _: reader.converged_pairs(1),
                           reader=reader, store_args=store.args)
    fleet.stop(*connectors)
    done, seconds = run.pop("done"), run["seconds"]
    del run["read"]
    return {"protocol": protocol.name, "services": services, "computes": settings.computes,
            "pairs": pairs, "pairs_converged": done, **run,
            "ms_per_pair": None if seconds is None
            else (seconds - run["startup_seconds"]) * 1000.0 / pairs,
            "seed_seconds": seed_seconds}


def etcd(fleet, settings, *, services, upscale_rate=None):
    """The API (``api``; ``upscale_rate``: with upscales due at that rate too, given
    their closed loop's figures) and a
    convergence run (``services`` x ``computes``, batch extension) on one local etcd
    member, without TLS and then with TLS and a client certificate; the SQLite
    figures they are read against are those of the same run."""
    results = {}
    for tls in (False, True):
        store = EtcdBench(settings.workdir, tls=tls)
        try:
            results["tls" if tls else "plain"] = {
                "store": store.describe(),
                "api": api(fleet, settings, store=store, upscale_rate=upscale_rate),
                "convergence": etcd_convergence(fleet, settings, PROTOCOLS["batch"],
                                                services, store)}
        finally:
            store.stop()
    return results
