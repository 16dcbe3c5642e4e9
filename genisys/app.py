"""The controller process: open the store, load computes.py, run the
reconciler, serve the API, and shut down cleanly on SIGTERM or SIGINT.

Shutdown order: stop accepting connections, let in-flight requests finish
(their writes are acknowledged only once durable), close idle connections,
stop the reconciler (a pass cut short is redone at the next start: it is
level-triggered), then close the store, which drains its pending writes.
"""

import asyncio
import logging
import secrets
import urllib.parse

from genisys.api import make_app
from genisys.audit import AuditLog
from genisys.auth import Authenticator, Token
from genisys.computefile import load_compute_file
from genisys.config import API_EXPOSURE, server_tls_context
from genisys.connector.client import ConnectorClient
from genisys.errors import GenisysError, NotFound, StartupError
from genisys.intents import Intents
from genisys.metrics import Metrics
from genisys.model import Compute, is_loopback
from genisys.reconciler.controller import Reconciler
from genisys.reconciler.health import Thresholds
from genisys.reconciler.leader import make_leadership
from genisys.reconciler.queue import Backoff
from genisys.serving import bind_sockets, log_access, stop_on_signals
from genisys.store import store_from_url
from genisys.tasks import start_task, stop_tasks
from genisys.web import SERVER_MAX_HEADER_BYTES, InFlight, Server, drain

log = logging.getLogger("genisys")

#: Largest body the HTTP server reads at all; handlers refuse > 64 KiB with a 413.
SERVER_MAX_BODY_BYTES = 1024 * 1024


async def sync_computes(intents, computes, source):
    """Create or update the computes of computes.py in the store; one that already
    points at the same connector (with the same token) is left as it is, labels
    and manager included (a manifest may have applied it)."""
    for compute in computes:
        try:
            current = Compute.from_store((await intents.get_compute(compute.name)).value)
        except NotFound:
            current = None
        if current is not None and (current.connector, current.token) == (compute.connector,
                                                                          compute.token):
            log.info("compute %s -> %s is up to date (from %s)", compute.name,
                     compute.connector, source)
            continue
        _, created = await intents.put_compute(compute)
        log.info("%s compute %s -> %s (from %s)", "created" if created else "loaded",
                 compute.name, compute.connector, source)


async def warn_plain_http(intents):
    for compute in (await intents.list_computes()).values():
        url = urllib.parse.urlsplit(compute["connector"])
        if url.scheme == "http" and not is_loopback(url.hostname or ""):
            log.warning("compute %s reaches its connector over plain http (%s): calls are "
                        "neither encrypted nor authenticated on the way", compute["name"],
                        compute["connector"])


async def forget_expired_keys(intents):
    """Now and then, drop the idempotency records whose time is up."""
    interval = min(max(intents.idempotency_ttl / 10, 1.0), 3600.0)
    while True:
        try:
            forgotten = await intents.forget_expired_idempotency_keys()
            if forgotten:
                log.info("forgot %d expired idempotency key(s)", forgotten)
        except GenisysError as e:
            log.warning("cannot forget expired idempotency keys: %s", e)
        await asyncio.sleep(interval)


def make_reconciler(store, settings, metrics, leadership=None, api_answering=None):
    client = ConnectorClient(connect_timeout=settings.connector.connect_timeout,
                             request_timeout=settings.connector.timeout,
                             max_in_flight=settings.connector.max_in_flight,
                             ca_file=settings.connector.ca_file, metrics=metrics,
                             max_answer_bytes=settings.connector.max_answer_size,
                             max_replicas=settings.intents.max_replicas,
                             identity=leadership.identity if leadership is not None else None,
                             term=leadership.term if leadership is not None else None)
    backoff = Backoff(initial=settings.reconciler.backoff_initial,
                      maximum=settings.reconciler.backoff_max)
    r = settings.reconciler
    thresholds = Thresholds(failure=r.compute_failure_threshold,
                            success=r.compute_success_threshold,
                            flap_window=r.compute_flap_window)
    return Reconciler(store, client, metrics=metrics,
                      poll_interval=settings.connector.poll_interval,
                      workers=r.workers, backoff=backoff, pass_budget=r.pass_budget,
                      leadership=leadership, health=thresholds,
                      probe_interval=r.compute_probe_interval, failover_rate=r.failover_rate,
                      failover_breaker=r.failover_breaker, api_answering=api_answering)


def connectors_known(leadership):
    """What this process's reconciler has learnt of each connector (its batch size and
    capacity), for the dashboard; nothing while it does not lead."""
    def known():
        reconciler = leadership.reconciler
        return reconciler.client.known() if reconciler is not None else {}
    return known


def make_intents(store, settings):
    return Intents(store, max_replicas=settings.intents.max_replicas,
                   max_services=settings.intents.max_services,
                   max_computes=settings.intents.max_computes,
                   connector_hosts=settings.intents.connector_hosts,
                   idempotency_ttl=settings.intents.idempotency_ttl)


async def serve(app, settings, stop, *, listening=None):
    """Serve ``app`` until ``stop`` is set, then drain: no new connections, let
    in-flight requests finish, close what is left. ``listening(port)`` is called
    once the port is open."""
    tls = None
    if settings.server.tls_cert:
        tls = server_tls_context(settings.server.tls_cert, settings.server.tls_key)
    server = Server(
        app, ssl_options=tls, max_body_size=SERVER_MAX_BODY_BYTES, xheaders=False,
        max_header_size=SERVER_MAX_HEADER_BYTES,
        idle_connection_timeout=settings.server.idle_timeout,
        body_timeout=settings.server.body_timeout)
    sockets = bind_sockets(bind=settings.server.bind, port=settings.server.port)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    log_access(log, API_EXPOSURE, bind=settings.server.bind, tokens=settings.auth.tokens)
    log.info("genisys listening on %s://%s:%d (store %s)", "https" if tls else "http",
             settings.server.bind, port, settings.store.url)
    if listening is not None:
        listening(port)
    await stop.wait()
    await drain(server, app.tracker, logger=log)


async def run(settings, *, stop=None):
    """Serve until ``stop`` (an asyncio.Event) is set or a signal arrives."""
    computes = []
    if settings.intents.compute_file:
        computes = load_compute_file(settings.intents.compute_file)

    with stop_on_signals(stop or asyncio.Event()) as stop:
        await _run_controller(settings, computes, stop)
    log.info("stopped")


async def _run_controller(settings, computes, stop):
    store = store_from_url(settings.store.url, etcd_security=settings.store.etcd_security())
    try:
        await store.open()
    except GenisysError as e:
        raise StartupError("cannot open the store %s: %s" % (settings.store.url, e.message)) \
            from e
    leadership = audit = None
    background = []
    try:
        intents = make_intents(store, settings)
        await sync_computes(intents, computes, settings.intents.compute_file)
        await warn_plain_http(intents)
        metrics, audit, tracker = Metrics(), AuditLog(store), InFlight()
        # With etcd, the elected leader alone reconciles; otherwise this process does.
        # Its passes yield to this process's API when that is busy (workers.PassGate).
        leadership = make_leadership(store, metrics=metrics, ttl=settings.reconciler.leader_ttl,
                                     identity=settings.reconciler.identity)
        await leadership.start(lambda lead: make_reconciler(
            store, settings, metrics, lead, api_answering=lambda: tracker.answering))
        background = [start_task(forget_expired_keys(intents), name="idempotency-janitor"),
                      start_task(audit.run(), name="audit-writer")]
        tokens, checks, listening = settings.auth.tokens, {}, None
        checks["leadership"] = lambda: (True, leadership.status())
        if settings.intents.manifests:
            # Imported here: the sidecar's HTTP client and YAML loader cost a tenth of a
            # second of start-up, which a controller without manifests need not pay.
            from genisys.sidecar import TOKEN_NAME, ManifestSync, own_client_factory
            sidecar_token = secrets.token_urlsafe(32) if tokens else None
            if sidecar_token:
                tokens += (Token(TOKEN_NAME, sidecar_token),)
            sync = ManifestSync(settings.intents.manifests, metrics=metrics,
                                interval=settings.intents.manifests_interval,
                                make_client=None)
            checks["manifests"] = lambda: (sync.ready, sync.status())

            def listening(port):
                sync.make_client = own_client_factory(
                    port=port, bind=settings.server.bind, tls=bool(settings.server.tls_cert),
                    token=sidecar_token)
                background.append(start_task(sync.run(), name="manifests-sync"))
        app = make_app(intents, tracker=tracker, metrics=metrics, auth=Authenticator(tokens),
                       audit=audit, checks=checks, connectors=connectors_known(leadership))
        await serve(app, settings, stop, listening=listening)
    finally:
        await stop_tasks(background)
        if audit is not None:
            await audit.flush()  # what was answered is in the trail
        if leadership is not None:
            await leadership.stop()  # the reconciler first, then the lease
        await store.close()
