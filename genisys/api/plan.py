"""/plan: what the controller would do now (``genisys.reconciler.plan``)."""

from genisys import errors
from genisys.api.base import APIHandler
from genisys.model import describe
from genisys.reconciler.plan import make_plan

#: The largest revision a store has (etcd's are signed 64-bit integers).
MAX_REVISION = 2 ** 63 - 1


class PlanHandler(APIHandler):
    async def get(self):
        since = self.get_query_argument("since", None)
        if since is not None:
            if not (since.isascii() and since.isdigit()) or int(since) > MAX_REVISION:
                raise errors.Invalid("must be a store revision (a whole number up to %d), "
                                     "got %s" % (MAX_REVISION, describe(since)), field="since")
            since = int(since)
        self.send(200, await make_plan(self.intents.store, since=since))


def routes(**deps):
    return [(r"/plan/?", PlanHandler, deps)]
