"""The base of every API handler: ``genisys.web.JSONHandler`` plus the intent layer.

JSON in/out, the body limit and the error mapping are generic and live in
``genisys.web`` (the connector server uses them too); what is API-specific
is here: handlers get the intent layer, and writes may be conditional on a
resourceVersion through ``If-Match``. The names other modules import from
here (ApiError, parse_json, MAX_BODY_BYTES, ...) are re-exported.
"""

from genisys import errors
from genisys.intents import ANY_VERSION
from genisys.web import (
    MAX_BODY_BYTES,
    ApiError,
    InFlight,
    JSONHandler,
    parse_json,
    reason_for,
)
from genisys.web import NotFoundHandler as _NotFoundHandler

__all__ = ["APIHandler", "ApiError", "InFlight", "MAX_BODY_BYTES", "NotFoundHandler",
           "parse_json", "reason_for"]


class APIHandler(JSONHandler):
    """Handlers get the intent layer and the in-flight tracker from the route table."""

    def initialize(self, *, intents, tracker, auth=None):
        super().initialize(tracker=tracker, auth=auth)
        self.intents = intents

    def if_match(self):
        """The If-Match precondition: None, ANY_VERSION or a resourceVersion."""
        header = self.request.headers.get("If-Match")
        if header is None:
            return None
        tag = header.strip()
        if tag == "*":
            return ANY_VERSION
        if tag.startswith("W/"):
            tag = tag[2:]
        tag = tag.strip('"')
        if not tag.isdigit():
            raise errors.VersionMismatch("If-Match %r is not a resourceVersion of this object"
                                         % header)
        return int(tag)


class NotFoundHandler(_NotFoundHandler, APIHandler):
    """Unknown paths get a JSON 404; takes the same route arguments as every API handler."""
