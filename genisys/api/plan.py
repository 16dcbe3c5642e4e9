"""/plan: what the controller would do now (``genisys.reconciler.plan``)."""

from genisys import errors
from genisys.api.base import APIHandler
from genisys.model import describe
from genisys.reconciler.plan import make_plan


class PlanHandler(APIHandler):
    async def get(self):
        since = self.get_query_argument("since", None)
        if since is not None:
            if not (since.isascii() and since.isdigit()) or len(since) > 19:
                raise errors.Invalid("must be a store revision (a whole number), got %s"
                                     % describe(since), field="since")
            since = int(since)
        self.send(200, await make_plan(self.intents.store, since=since))


def routes(**deps):
    return [(r"/plan/?", PlanHandler, deps)]
