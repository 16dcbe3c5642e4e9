"""The batch extension of the connector protocol, connector side: many services per call.

A connector that offers it answers ``GET /capabilities`` with
``{"batch": {"maxServices": MAX_SERVICES}}`` and takes

* ``POST /batch/status`` ``{"services": [name, ...]}``
* ``POST /batch/scale`` ``{"services": {name: N, ...}}``

both answered ``{"services": {name: {"running_resources": N}}}``, where a
service whose call failed gets ``{"error": {"status", "reason", "message"}}``
instead (with ``retryAfter``, seconds, where the per-service answer has a
Retry-After): the status the per-service endpoint would have answered, so one
service's failure is its own entry and never the whole answer's. Each service
is one call of the backend (``count``, or the same scale order as ``POST
/service/<name>/scale``), ``CONCURRENCY`` at a time. This module owns what a
valid body is and how the calls run; ``genisys.connector.server`` serves it.
"""

import asyncio
import logging
import math

from genisys.connector.backend import MAX_RESOURCES
from genisys.errors import GenisysError, Invalid
from genisys.model import check_fields, describe, type_name, validate_count, validate_name
from genisys.web import RequestRefused, status_for

log = logging.getLogger(__name__)

#: Most services one batch request may carry: a status call for 1,000 services answers
#: in one round trip where the per-service protocol needs 1,000, and the body (names of
#: up to 63 characters) stays well under MAX_BATCH_BODY_BYTES.
MAX_SERVICES = 1000
#: Largest body of a batch request, in bytes (other endpoints take 64 KiB): 1,000
#: orders of the longest names are about 80 KiB, so this is room, not a tight fit.
MAX_BATCH_BODY_BYTES = 1024 * 1024
#: Backend calls one batch request runs at once. The backend locks each service, so
#: this only bounds the load one request puts on what the backend drives (forks, the
#: Docker engine); 64 keeps 1,000 services to 16 rounds of the slowest call.
CONCURRENCY = 64

#: What ``GET /capabilities`` answers (with a ``capacity`` beside it if the connector
#: has one: ``genisys.connector.capacity``).
CAPABILITIES = {"batch": {"maxServices": MAX_SERVICES}}

_INTERNAL_ERROR = {"status": 500, "reason": "InternalError",
                   "message": "internal error, see the server log"}


def _check_size(count):
    if count == 0:
        raise Invalid("must name at least one service", field="services")
    if count > MAX_SERVICES:
        raise RequestRefused(413, "%d services in one request, the limit is %d (maxServices of "
                             "GET /capabilities)" % (count, MAX_SERVICES), field="services")


def services_to_check(body):
    """The names of a ``/batch/status`` body, in its order; Invalid (or a 413) naming the field."""
    check_fields(body, required=("services",))
    names = body["services"]
    if not isinstance(names, list):
        raise Invalid("must be an array of service names, got %s" % type_name(names),
                      field="services")
    _check_size(len(names))
    seen = set()
    for i, name in enumerate(names):
        field = "services[%d]" % i
        validate_name(name, field)
        if name in seen:
            raise Invalid("%s is asked for twice" % describe(name), field=field)
        seen.add(name)
    return names


def orders_from(body):
    """{service: number} of a ``/batch/scale`` body; each number checked like the ``number``
    of ``POST /service/<name>/scale``. Invalid (or a 413) naming the field."""
    check_fields(body, required=("services",))
    orders = body["services"]
    if not isinstance(orders, dict):
        raise Invalid("must be an object of service name -> number of resources, got %s"
                      % type_name(orders), field="services")
    _check_size(len(orders))
    for name, number in orders.items():
        validate_name(name, "services")
        validate_count(number, "services.%s" % name, MAX_RESOURCES,
                       limit="the connector's limit")
    return orders


async def _entry(what, name, call):
    try:
        return {"running_resources": await call(name)}
    except Exception as e:
        status = status_for(e) if isinstance(e, GenisysError) else None
        if status is not None:
            error = {"status": status, "reason": e.reason, "message": e.message}
            retry_after = getattr(e, "retry_after", None)
            if retry_after is not None:  # what the per-service answer's Retry-After says
                error["retryAfter"] = max(1, math.ceil(retry_after))
            return {"error": error}
        # What the per-service endpoint would answer 500 with a traceback in the log.
        log.exception("%s of service %s in a batch request failed", what, name)
        return {"error": dict(_INTERNAL_ERROR)}


async def for_each(what, names, call, *, concurrency=CONCURRENCY):
    """{name: entry} for every name (in their order): ``await call(name)``, the running
    count, ``concurrency`` calls at a time; a failed call is its name's error entry.
    ``what`` ("status", "scale") names the call in the log."""
    entries = {}
    pending = iter(names)

    async def worker():
        for name in pending:  # one iterator shared by the workers: each name once
            entries[name] = await _entry(what, name, call)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(names)))))
    return {name: entries[name] for name in names}
