"""The base of every API handler: ``genisys.web.JSONHandler`` plus the intent layer.

JSON in/out, the body limit and the error mapping are generic and live in
``genisys.web`` (the connector server uses them too); what is API-specific
is here: handlers get the intent layer, and writes may be conditional on a
resourceVersion through ``If-Match``. The names other modules import from
here (RequestRefused, parse_json, MAX_BODY_BYTES, ...) are re-exported.
"""

import hashlib
import json
import time

from genisys import errors
from genisys.auth import WRITE_METHODS
from genisys.intents import ANY_VERSION, Idempotency
from genisys.model import describe, validate_idempotency_key
from genisys.reconciler.plan import changed_lines, make_plan
from genisys.store.dryrun import DryRunStore
from genisys.web import (
    MAX_BODY_BYTES,
    InFlight,
    JSONHandler,
    RequestRefused,
    parse_json,
    reason_for,
)
from genisys.web import NotFoundHandler as _NotFoundHandler

__all__ = ["APIHandler", "RequestRefused", "InFlight", "MAX_BODY_BYTES", "NotFoundHandler",
           "parse_json", "reason_for"]


class APIHandler(JSONHandler):
    """Handlers get the intent layer and the in-flight tracker from the route table."""

    def initialize(self, *, intents, tracker, auth=None, audit=None):
        super().initialize(tracker=tracker, auth=auth)
        self.intents = intents
        self.audit = audit
        #: The store a dry run writes into (None: not a dry run).
        self.dry_run = None

    def prepare(self):
        super().prepare()
        if self.request.method in WRITE_METHODS and self._asks_dry_run():
            # The intent layer runs as usual, over a store whose writes go nowhere.
            self.dry_run = DryRunStore(self.intents.store)
            self.intents = self.intents.over(self.dry_run)

    def _asks_dry_run(self):
        values = self.request.query_arguments.get("dryRun", [])
        if not values:
            return False
        value = values[-1].decode("utf-8", "replace")
        if len(values) > 1 or value not in ("true", "false"):
            raise errors.Invalid("must be true or false (once), got %s"
                                 % ", ".join(describe(v.decode("utf-8", "replace"))
                                             for v in values), field="dryRun")
        return value == "true"

    async def send_written(self, status, body, *, version=None):
        """The answer of a write; of a dry run: what it would have been, and how the
        plan would change (``genisys.reconciler.plan``), with nothing written."""
        if self.dry_run is None:
            self.send(status, body, version=version)
            return
        now = time.time()  # one moment for both: a paced step due between them is no change
        before = await make_plan(self.dry_run.base, now=now)
        after = await make_plan(self.dry_run, now=now)
        self.send(200, {"dryRun": True, "status": status, "result": body,
                        "plan": changed_lines(before, after), "revision": before["revision"]})

    def on_finish(self):
        if self.audit is not None and self.request.method in WRITE_METHODS \
                and self.dry_run is None:
            who = self.current_user.name if self.current_user else "anonymous"
            self.audit.record(who=who, method=self.request.method, path=self.request.path,
                              status=self.get_status(), reason=self.error_reason)
        super().on_finish()

    def idempotency(self, body):
        """The request's Idempotency-Key with a digest of what it asks, or None."""
        key = self.request.headers.get("Idempotency-Key")
        if key is None:
            return None
        validate_idempotency_key(key)
        asked = json.dumps([self.request.method, self.request.path.rstrip("/"), body],
                           sort_keys=True)
        return Idempotency(key=key, request=hashlib.sha256(asked.encode()).hexdigest())

    async def send_change(self, view, idempotency):
        """202 with the service; a replayed answer says so."""
        if idempotency is not None and idempotency.replayed:
            self.set_header("Idempotent-Replayed", "true")
        await self.send_written(202, view, version=view["resourceVersion"])

    def if_match(self):
        """The If-Match precondition: None, ANY_VERSION or a resourceVersion."""
        header = self.request.headers.get("If-Match")
        if header is None:
            return None
        tag = header.strip()
        if not tag:
            # A malformed header, not a precondition that fails: the document says so too
            # (minLength 1).
            raise errors.Invalid('must be * or an entity tag such as "12", got an empty '
                                 'value', field="If-Match")
        if tag == "*":
            return ANY_VERSION
        if tag.startswith("W/"):
            # If-Match compares strongly (RFC 9110): a weak tag never matches.
            raise errors.VersionMismatch("If-Match %r is a weak entity tag, which never "
                                         "matches; send the ETag as it came" % header)
        tag = tag.strip('"')
        if not (tag.isascii() and tag.isdigit()):
            raise errors.VersionMismatch("If-Match %r is not a resourceVersion of this object"
                                         % header)
        return int(tag)


class NotFoundHandler(_NotFoundHandler, APIHandler):
    """Unknown paths get a JSON 404; takes the same route arguments as every API handler."""
