"""Fencing: a connector takes orders from the newest leader only (docs/connectors.md,
"Fencing").

A controller elected on etcd sends its term with every call: ``Genisys-Term`` (the
revision that wrote its leadership key, higher for every new leader) and
``Genisys-Term-Scope`` (the etcd cluster and key prefix the term counts in, so that
installations sharing a connector never fence each other). The connector keeps the
newest term it has seen in each scope, from any call, and refuses with 409 StaleTerm a
scale order of an older one: a leader paused past its lease, whose order arrives after
the next leader has spoken, changes nothing. Calls without a term (one controller on
SQLite, the seed's protocol) are never fenced.
"""

import collections
import re

from genisys.connector import TERM_HEADER, TERM_SCOPE_HEADER
from genisys.errors import Conflict, Invalid

#: Scopes remembered at most (the oldest seen is forgotten first).
MAX_SCOPES = 1000
_SCOPE = re.compile(r"[!-~]{1,255}\Z")
_TERM = re.compile(r"[1-9][0-9]{0,18}\Z")


class StaleTerm(Conflict):
    """An order of a leader whose term is older than one the connector has seen."""

    reason = "StaleTerm"


class Fence:
    """The newest term seen in each scope."""

    def __init__(self, max_scopes: int = MAX_SCOPES) -> None:
        self.max_scopes = max_scopes
        self._terms: collections.OrderedDict[str, int] = collections.OrderedDict()

    def check(self, headers, *, order: bool) -> None:
        """Note the term of a call's ``headers``; raise StaleTerm if it is an ``order``
        of an older term than the scope's newest, Invalid if a header is malformed."""
        term, scope = headers.get(TERM_HEADER), headers.get(TERM_SCOPE_HEADER)
        if term is None and scope is None:
            return
        if scope is None or not _SCOPE.match(scope):
            raise Invalid("must be 1 to 255 visible ASCII characters, sent with %s%s"
                          % (TERM_HEADER, "" if scope is None else ", got %r" % scope[:80]),
                          field=TERM_SCOPE_HEADER)
        if term is None or not _TERM.match(term):
            raise Invalid("must be a positive integer below 10^19, sent with %s%s"
                          % (TERM_SCOPE_HEADER, "" if term is None else ", got %r" % term[:80]),
                          field=TERM_HEADER)
        number = int(term)
        newest = self._terms.get(scope, 0)
        if number >= newest:
            self._terms[scope] = number
            self._terms.move_to_end(scope)
            while len(self._terms) > self.max_scopes:
                self._terms.popitem(last=False)
        elif order:
            raise StaleTerm("an order of term %d, after a call of term %d in the same scope "
                            "(%s): a newer leader gives the orders now" % (number, newest, scope),
                            field=TERM_HEADER)
