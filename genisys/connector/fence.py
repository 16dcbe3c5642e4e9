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

A connector with a state directory (the process, docker and aws backends) keeps the
newest terms in ``<state-dir>/terms.json``, written durably before the call that
brought a newer one is answered: a restart does not forget them, so a deposed
leader's late order is refused after it too.
"""

import collections
import logging
import re

from genisys.connector import TERM_HEADER, TERM_SCOPE_HEADER
from genisys.connector.statedir import read_kept, write_durably
from genisys.errors import Conflict, Invalid, StartupError

log = logging.getLogger(__name__)

#: The file, in a backend's state directory, that keeps the newest terms.
TERMS_FILE = "terms.json"

#: Scopes remembered at most (the oldest seen is forgotten first).
MAX_SCOPES = 1000
_SCOPE = re.compile(r"[!-~]{1,255}\Z")
_TERM = re.compile(r"[1-9][0-9]{0,18}\Z")


class StaleTerm(Conflict):
    """An order of a leader whose term is older than one the connector has seen."""

    reason = "StaleTerm"


class Fence:
    """The newest term seen in each scope; ``path``: the file that keeps them across
    restarts (None: memory only)."""

    def __init__(self, max_scopes: int = MAX_SCOPES, *, path=None) -> None:
        self.max_scopes = max_scopes
        self.path = path
        self._terms: collections.OrderedDict[str, int] = collections.OrderedDict()
        if path is not None:
            self._terms.update(_read_terms(path))

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
            if number > newest and self.path is not None:
                self._keep()
        elif order:
            raise StaleTerm("an order of term %d, after a call of term %d in the same scope "
                            "(%s): a newer leader gives the orders now" % (number, newest, scope),
                            field=TERM_HEADER)

    def _keep(self) -> None:
        """Write the terms to ``path`` (a new leader's first call: rare, so in line)."""
        try:
            write_durably(self.path, {"terms": dict(self._terms)})
        except OSError as e:
            # The fence holds while this process lives; only a restart would forget.
            log.error("cannot keep the fencing terms in %s: %s (a restart would forget "
                      "them)", self.path, e.strerror or e)


def _read_terms(path) -> dict:
    """The terms kept in ``path``: none if it does not exist; StartupError if it
    cannot be used (a person decides: starting afresh forgets them)."""
    kept = read_kept(path, what="the fencing terms", at_stake="until the leader calls, a "
                     "deposed leader's order would then be obeyed")
    if kept is None:
        return {}
    terms = kept.get("terms") if isinstance(kept, dict) else None
    if not isinstance(terms, dict) or not all(
            isinstance(scope, str) and _SCOPE.match(scope) and type(term) is int and term > 0
            for scope, term in terms.items()):
        raise StartupError("the fencing terms file %s does not hold {\"terms\": {scope: "
                           "positive integer}} (move it away to start afresh)" % path)
    return terms
