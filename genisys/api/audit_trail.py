"""/audit: the newest entries of the audit trail, newest first (?limit=N, at most 1000)."""

from genisys.api.base import APIHandler
from genisys.errors import Invalid

MAX_AUDIT_LIMIT = 1000


class AuditHandler(APIHandler):
    async def get(self):
        raw = self.get_query_argument("limit", "100")
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_AUDIT_LIMIT:
            raise Invalid("must be an integer from 1 to %d, got %r" % (MAX_AUDIT_LIMIT, raw),
                          field="limit")
        self.send(200, await self.audit.entries(int(raw)))


def routes(**deps):
    return [(r"/audit/?", AuditHandler, deps)]
