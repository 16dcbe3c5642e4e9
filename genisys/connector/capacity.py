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
        """How many resources the connector runs now, over all its services, counting a
        service with an order in flight at the most that order asked for: what genisys
        places elsewhere must not count on room another order is taking."""
        running = self.backend.in_use()
        coming = {s: max(orders) for s, orders in self._orders.items() if orders}
        return sum(max(running.get(s, 0), coming.get(s, 0)) for s in running.keys() | coming)

    def report(self):
        """The ``capacity`` of ``GET /capabilities``."""
        return {"total": self.total, "used": self.used()}

    def raising_last(self, orders):
        """The services of a batch of ``orders`` ({service: number}) in two lists: those
        whose order does not raise their count, then those whose order does. Carried out
        in that order, the room the first free is there for the second."""
        running = self.backend.in_use()
        others, raising = [], []
        for service, number in orders.items():
            (raising if number > running.get(service, 0) else others).append(service)
        return others, raising

    @contextlib.contextmanager
    def order(self, service, number):
        """Held while the order to run ``number`` resources of ``service`` is carried
        out; InsufficientCapacity if it would take the connector over its capacity."""
        running = self.backend.in_use()
        if number > running.get(service, 0):
            # An undefined service is a 404 whatever the room: the backend says it first.
            self.backend.definition_for(service)
            self._check(service, number, running)
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

    def _check(self, service, number, running):
        others = sum(n for s, n in running.items() if s != service)
        # What the other services' orders in flight will add to what they run now.
        coming = sum(max(0, max(self._orders[s]) - running.get(s, 0))
                     for s in self._orders if s != service)
        if others + coming + number <= self.total:
            return
        message = "capacity is %s and %d run (%d of them other services')" % (
            _resources(self.total), sum(running.values()), others)
        if coming:
            message += ", %d more are being started for other services" % coming
        raise InsufficientCapacity("%s: cannot run %d of %s" % (message, number, service),
                                   field="number")


def _resources(number):
    return "%d resource%s" % (number, "" if number == 1 else "s")
