"""Prometheus metrics of a connector server, on a registry of its own.

Each connector app (and each test's in-process one) gets its own
``ConnectorMetrics``, never prometheus_client's global registry, so two of
them in one process never mix their numbers.
"""

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from genisys.model import VISIBLE_ASCII

#: A scale order is taken in microseconds (simulated) to seconds (a thousand
#: processes to fork); the buckets cover both.
SCALE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: Controllers a connector counts orders of by name; more are counted as "other".
MAX_CALLERS = 16
#: What a controller's name (--identity) looks like.
_CALLER = re.compile("[%s]{1,128}" % VISIBLE_ASCII)


class ConnectorMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("genisys_connector_requests", "HTTP requests answered, by "
                                "endpoint, method and status code.",
                                ["endpoint", "method", "code"], registry=r)
        self.scale_seconds = Histogram("genisys_connector_scale_seconds", "Time to take one "
                                       "scale order, by outcome (ok, error).", ["outcome"],
                                       registry=r, buckets=SCALE_BUCKETS)
        self.resources = Gauge("genisys_connector_resources", "Running resources, by service.",
                               ["service"], registry=r)
        # A batch request is one line of ``requests`` whatever it carries: these say how
        # many services it carried, and how many of them were answered with an error.
        self.batch_services = Counter("genisys_connector_batch_services", "Services carried by "
                                      "batch requests, by endpoint (batch_status, batch_scale).",
                                      ["endpoint"], registry=r)
        self.batch_errors = Counter("genisys_connector_batch_errors", "Services of batch "
                                    "requests answered with an error entry, by endpoint and "
                                    "the entry's status.", ["endpoint", "code"], registry=r)
        self.orders = Counter("genisys_connector_orders", "Scale orders received (each "
                              "service of a batch counts), by the controller that sent them "
                              "(its Genisys-Identity header).", ["caller"], registry=r)
        self._callers = set()

    def count_order(self, caller):
        """Count a scale order of ``caller`` (a Genisys-Identity header, or None). A value
        that is no controller name counts as "unknown", and past MAX_CALLERS names as
        "other": a caller cannot grow the metrics without bound."""
        if caller is None or not _CALLER.fullmatch(caller):
            caller = "unknown"
        elif caller not in self._callers:
            if len(self._callers) >= MAX_CALLERS:
                caller = "other"
            else:
                self._callers.add(caller)
        self.orders.labels(caller).inc()

    def set_resources(self, counts):
        """Make the resources gauge say ``counts`` ({service: running}), and nothing else."""
        for service, running in counts.items():
            self.resources.labels(service).set(running)
        for labels in [s.labels for m in self.resources.collect() for s in m.samples]:
            if labels["service"] not in counts:
                self.resources.remove(labels["service"])

    def count_batch(self, endpoint, entries):
        """Count the services of one batch answer ({service: entry})."""
        self.batch_services.labels(endpoint).inc(len(entries))
        for entry in entries.values():
            if "error" in entry:
                self.batch_errors.labels(endpoint, str(entry["error"]["status"])).inc()

    def render(self):
        return generate_latest(self.registry)
