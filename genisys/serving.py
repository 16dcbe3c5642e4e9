"""What every genisys server process (``genisys serve``, ``genisys connector``) does
the same way around its HTTP server.

* It refuses to listen beyond loopback without a token (``check_exposure``, at
  start-up, before anything is opened), and says loudly when told to anyway
  (``log_access``).
* It binds its port or fails with one clear error (``bind_sockets``: a port in use
  says so).
* SIGTERM and SIGINT set its stop event, which starts a clean shutdown
  (``stop_on_signals``).

What differs between the two is only the wording of what an open port would let
anyone do and how to give it a token: an ``Exposure``.
"""

import asyncio
import contextlib
import dataclasses
import errno
import signal

import tornado.netutil

from genisys.errors import ConfigError, StartupError
from genisys.model import is_loopback

#: The signals that stop a server cleanly (then it exits 0).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclasses.dataclass(frozen=True)
class Exposure:
    """The words a server uses about its tokens, in its refusal and its warnings."""

    #: What it has none of: "API tokens", "a token".
    without: str
    #: What anyone who reaches an unauthenticated port could do.
    risk: str
    #: How to give it tokens (the first choice the refusal offers).
    remedy: str
    #: The setting the refusal names (the bind address's key or flag).
    field: str
    #: How its tokens are called in the log line that names them.
    tokens_label: str = "tokens"


def check_exposure(exposure, *, bind, has_tokens, insecure_bind_any):
    """ConfigError unless ``bind`` is loopback, there are tokens, or the operator said
    ``--insecure-bind-any``: whoever reaches an open port may do what it serves."""
    if has_tokens or is_loopback(bind) or insecure_bind_any:
        return
    raise ConfigError("refusing to listen on %s without %s: anyone who reaches it could %s. "
                      "%s, bind to 127.0.0.1, or pass --insecure-bind-any"
                      % (bind, exposure.without, exposure.risk, exposure.remedy),
                      field=exposure.field)


def log_access(logger, exposure, *, bind, tokens):
    """One line at start-up on who may call: the tokens' names (never their secrets),
    a warning when nobody needs one beyond loopback, or that loopback is all it takes."""
    if tokens:
        logger.info("%s: %s", exposure.tokens_label,
                    ", ".join("%s (%s)" % (t.name, t.role) for t in tokens))
    elif not is_loopback(bind):
        logger.warning("INSECURE: listening on %s without %s (--insecure-bind-any): anyone "
                       "who can reach this port can %s", bind, exposure.without, exposure.risk)
    else:
        logger.info("no %s configured: requests are not authenticated (loopback only)",
                    exposure.tokens_label)


def bind_sockets(*, bind, port):
    """The listening sockets on ``bind``:``port`` (0: a free port), or StartupError."""
    try:
        return tornado.netutil.bind_sockets(port, address=bind)
    except OSError as e:
        hint = " (address already in use)" if e.errno == errno.EADDRINUSE else ""
        raise StartupError("cannot listen on %s:%d: %s%s"
                           % (bind, port, e.strerror or e, hint)) from e


@contextlib.contextmanager
def stop_on_signals(stop):
    """While the block runs, SIGTERM and SIGINT set ``stop`` (an asyncio.Event)
    instead of killing the process; the handlers are removed after it."""
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
