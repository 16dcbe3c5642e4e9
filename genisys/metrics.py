"""Prometheus metrics of the controller, on a registry of its own.

Each controller (and each test's in-process app) gets its own ``Metrics``,
so two of them in one process never mix their numbers. The API serves
``render()`` at /metrics.
"""

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: Connector calls are loopback-fast or WAN-slow; the buckets cover both.
CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.passes = Counter("genisys_reconcile_passes", "Reconcile passes of one service, by "
                              "result (converged, progressing, failed).", ["result"], registry=r)
        self.errors = Counter("genisys_reconcile_errors", "Failed (service, compute) reconciles, "
                              "by reason.", ["reason"], registry=r)
        self.pass_seconds = Histogram("genisys_reconcile_pass_seconds", "Duration of one "
                                      "reconcile pass of one service.", registry=r,
                                      buckets=CALL_BUCKETS)
        self.placement_seconds = Counter(
            "genisys_placement_cpu_seconds", "CPU time spent deciding placed services' "
            "assignments (genisys.placement).", registry=r)
        self.placements = Counter("genisys_placements", "Assignments of placed services "
                                  "worked out (one per pass of a placed service).", registry=r)
        self.queue_depth = Gauge("genisys_queue_depth", "Services waiting in the work queue "
                                 "(ready now, not counting those waiting for a backoff).",
                                 registry=r)
        self.queue_delayed = Gauge("genisys_queue_delayed", "Services waiting for a retry "
                                   "delay to pass.", registry=r)
        self.call_seconds = Histogram("genisys_connector_call_seconds", "Latency of connector "
                                      "calls, by compute, operation and outcome.",
                                      ["compute", "operation", "outcome"], registry=r,
                                      buckets=CALL_BUCKETS)
        self.passes_allowed = Gauge("genisys_reconcile_passes_allowed", "Passes that may run "
                                    "at once: reconciler.workers, fewer while the API "
                                    "answers many requests at once.", registry=r)
        self.connector_limit = Gauge("genisys_connector_limit", "Calls genisys lets be in "
                                     "flight to a compute's connector at once: its adaptive "
                                     "limit (connector.max_in_flight at most).", ["compute"],
                                     registry=r)
        # By compute, not by service: one time series per (service, compute) would
        # be 80,000 series (and some 60 MB) for 10,000 services on 4 computes. The
        # status of each service (GET /service/<name>) has the per-pair figures.
        self.desired = Gauge("genisys_desired_resources", "Desired resources on a compute, "
                             "all services together.", ["compute"], registry=r)
        self.running = Gauge("genisys_running_resources", "Running resources on a compute, "
                             "all services together, as last reported by its connector.",
                             ["compute"], registry=r)
        #: (service, compute) -> (desired, running) as last set: what the sums hold.
        self._pairs = {}
        self.compute_condition = Gauge(
            "genisys_compute_condition", "1 for each compute's current condition (Ready, "
            "NotReady or Unknown), as the controller observes its connector.",
            ["compute", "condition"], registry=r)
        self.failovers = Counter("genisys_failovers", "Shares of placed services moved off "
                                 "a NotReady compute (one per service and compute).",
                                 registry=r)
        self.leader = Gauge("genisys_reconciler_active", "1 while this process runs the "
                            "reconciler.", registry=r)
        self.leadership = Gauge("genisys_leadership", "1 for this process (identity), its role "
                                "(leader or follower) and the leader it knows of (empty: none "
                                "right now).", ["identity", "role", "leader"], registry=r)

        self.manifest_syncs = Counter("genisys_manifest_syncs", "Attempts to apply the "
                                      "manifests folder (sidecar mode), by result (success, "
                                      "error).", ["result"], registry=r)
        self.manifests_in_sync = Gauge("genisys_manifests_in_sync", "1 while the manifests "
                                       "folder is in force, 0 after a failed attempt.",
                                       registry=r)
        self.manifests_last_sync = Gauge("genisys_manifests_last_sync_timestamp_seconds",
                                         "When the manifests folder was last applied "
                                         "successfully.", registry=r)
        self.manifest_objects = Gauge("genisys_manifest_objects", "Objects the manifests "
                                      "folder held when last applied.", registry=r)

    def set_pair(self, service, compute, *, desired, running):
        """Record a pair's desired and running counts (running None: unknown, the last
        known one stays)."""
        old_desired, old_running = self._pairs.get((service, compute), (0, 0))
        if running is None:
            running = old_running
        if (desired, running) == (old_desired, old_running) and (service, compute) in self._pairs:
            return
        self._pairs[(service, compute)] = (desired, running)
        self.desired.labels(compute).inc(desired - old_desired)
        self.running.labels(compute).inc(running - old_running)

    def set_condition(self, compute, condition):
        """Record a compute's condition (None: the compute went)."""
        for known in ("Ready", "NotReady", "Unknown"):
            if condition is not None:
                self.compute_condition.labels(compute, known).set(int(known == condition))
            else:
                with contextlib.suppress(KeyError):  # never set
                    self.compute_condition.remove(compute, known)

    def set_leadership(self, *, identity, role, leader):
        self.leadership.clear()
        self.leadership.labels(identity, role, leader or "").set(1)

    def forget_pair(self, service, compute):
        old = self._pairs.pop((service, compute), None)
        if old is not None:
            self.desired.labels(compute).dec(old[0])
            self.running.labels(compute).dec(old[1])

    def render(self):
        return generate_latest(self.registry)
