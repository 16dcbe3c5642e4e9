"""The capacity of a connector, connector side: the most resources it runs at once.

A connector started with a capacity (``genisys connector --capacity N``) reports it
in ``GET /capabilities`` as ``{"capacity": {"total": N, "used": U}}``, so that
genisys can place services where there is room, and refuses a scale order that
would take it over N with 409 ``InsufficientCapacity``: one that asks more of a
service while the other services already hold the rest. Scaling down is always
taken, even on a connector over its capacity (one started with a lower one).

Orders run concurrently, so "the other services" is not only what they run
(``Backend.in_use``): an order taken and still being carried out (processes
starting, containers being created) counts at the number it asked for. Taking an
order, checking it and counting it are one step without an ``await``, so two
orders for different services can never both take the last free resource. A
batch carries out the orders that lower a service before those that raise one,
so that moving resources from one service to another in one batch works.
"""

import collections
import contextlib

from genisys.errors import InsufficientCapacity


class CapacityGuard:
    """The capacity ``total`` of the connector over ``backend``, and the orders in flight."""

    def __init__(self, backend, total):
        self.backend = backend
        self.total = total
        #: service -> the numbers of its orders taken and not finished yet
        self._orders = collections.defaultdict(collections.Counter)

    def used(self):
        """How many resources the connector runs now, over all its services, and how
        many more the orders in flight will start: what genisys places elsewhere must
        not count on room another order is taking."""
        in_use = self.backend.in_use()
        return sum(in_use.values()) + sum(self._coming(in_use, self.backend.stopping()).values())

    def report(self):
        """The ``capacity`` of ``GET /capabilities``."""
        return {"total": self.total, "used": self.used()}

    def raising_last(self, orders):
        """The services of a batch of ``orders`` ({service: number}) in two lists: those
        whose order does not raise their count, then those whose order does. Carried out
        in that order, the room the first free is there for the second (once what they
        stop is gone: a resource being stopped holds its room until then)."""
        running = _running(self.backend.in_use(), self.backend.stopping())
        others, raising = [], []
        for service, number in orders.items():
            (raising if number > running.get(service, 0) else others).append(service)
        return others, raising

    def _coming(self, in_use, stopping):
        """service -> what its orders in flight will start beyond what it runs."""
        running = _running(in_use, stopping)
        return {s: max(0, max(orders) - running.get(s, 0))
                for s, orders in self._orders.items() if orders}

    @contextlib.contextmanager
    def order(self, service, number):
        """Held while the order to run ``number`` resources of ``service`` is carried
        out; InsufficientCapacity if it would take the connector over its capacity."""
        in_use, stopping = self.backend.in_use(), self.backend.stopping()
        if number > _running(in_use, stopping).get(service, 0):
            # An undefined service is a 404 whatever the room: the backend says it first.
            self.backend.definition_for(service)
            self._check(service, number, in_use, stopping)
        orders = self._orders[service]
        orders[number] += 1
        try:
            yield
        finally:
            orders[number] -= 1
            if not orders[number]:
                del orders[number]
            if not orders:
                del self._orders[service]

    def _check(self, service, number, in_use, stopping):
        others = sum(n for s, n in in_use.items() if s != service)
        # What the other services' orders in flight will add to what they run now, and
        # this service's own resources still being stopped: they hold their room.
        coming = sum(n for s, n in self._coming(in_use, stopping).items() if s != service)
        leaving = stopping.get(service, 0)
        if others + coming + leaving + number <= self.total:
            return
        message = "capacity is %s and %d run (%d of them other services')" % (
            _resources(self.total), sum(in_use.values()), others)
        if coming:
            message += ", %d more are being started for other services" % coming
        if leaving:
            message += ", %d of %s are still stopping" % (leaving, service)
        raise InsufficientCapacity("%s: cannot run %d of %s" % (message, number, service),
                                   field="number")


def _running(in_use, stopping):
    """What each service runs that no order has stopped yet."""
    return {s: n - stopping.get(s, 0) for s, n in in_use.items()}


def _resources(number):
    return "%d resource%s" % (number, "" if number == 1 else "s")
