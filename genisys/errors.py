"""Domain errors shared by every layer.

The store, the intent layer and the loaders raise these; the HTTP API maps
them to status codes in exactly one place (``genisys.web``) and the CLI
to exit codes. Nothing here knows about HTTP libraries.
"""


class GenisysError(Exception):
    """Base of every error genisys raises on purpose."""

    #: Short machine-readable reason, used as ``error.reason`` in API bodies.
    reason = "InternalError"

    def __init__(self, message, *, field=None):
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self):
        if self.field:
            return "%s: %s" % (self.field, self.message)
        return self.message


class Invalid(GenisysError):
    """The input is malformed: a field is missing, of the wrong type or out of range."""

    reason = "Invalid"


class NotFound(GenisysError):
    reason = "NotFound"


class AlreadyExists(GenisysError):
    reason = "AlreadyExists"


class Conflict(GenisysError):
    """The request is well-formed but the current state forbids it."""

    reason = "Conflict"


class LimitExceeded(Conflict):
    """A configured maximum (computes, services) would be exceeded (HTTP 409)."""

    reason = "LimitExceeded"


class InsufficientCapacity(Conflict):
    """A connector refuses a scale order that would take it over its capacity, the most
    resources it runs at once over all its services (HTTP 409)."""

    reason = "InsufficientCapacity"


class IdempotencyKeyReused(GenisysError):
    """An Idempotency-Key already used for a different request (HTTP 422)."""

    reason = "IdempotencyKeyReused"


class VersionMismatch(GenisysError):
    """A conditional write found another version than the one it expected."""

    reason = "PreconditionFailed"


class ServiceNotDefined(NotFound):
    """A connector was asked about a service it has no definition for (how to run it)."""

    reason = "ServiceNotDefined"


class StartFailed(GenisysError):
    """A connector could not start a resource: the command can't be run (missing, not
    executable, bad cwd). Nothing of the refused order is left running."""

    reason = "StartFailed"


class BackendUnavailable(GenisysError):
    """A connector is up but what it drives is not: the Docker engine does not answer
    (HTTP 503; genisys shows the pair Unreachable)."""

    reason = "BackendUnavailable"


class Throttled(BackendUnavailable):
    """What a connector drives refuses calls for a while (AWS's RequestLimitExceeded):
    HTTP 503 with ``Retry-After: retry_after`` (seconds), so that genisys backs off."""

    reason = "Throttled"

    def __init__(self, message, *, retry_after, field=None):
        super().__init__(message, field=field)
        self.retry_after = retry_after


class SimulatedFailure(GenisysError):
    """A failure injected on purpose by the simulated connector backend."""

    reason = "SimulatedFailure"


class Unauthenticated(GenisysError):
    """No token, or one that is not valid (HTTP 401)."""

    reason = "Unauthorized"


class Forbidden(GenisysError):
    """A valid token that may not do this (a read-only token writing: HTTP 403)."""

    reason = "Forbidden"


class BackendForbidden(Forbidden):
    """What a connector drives refuses the connector's own credentials (AWS's
    UnauthorizedOperation): HTTP 403, not the caller's token but the connector's."""

    reason = "BackendForbidden"


class StoreUnavailable(GenisysError):
    """The store can't be reached or used (I/O error, closed, locked by another process)."""

    reason = "StoreUnavailable"


class ConfigError(GenisysError):
    """Bad settings: the message names the setting and where it came from."""

    reason = "ConfigError"


class StartupError(GenisysError):
    """A process cannot start: port in use, state directory locked (exit status 1)."""

    reason = "StartupError"
