"""Who may call genisys: bearer tokens, each with a name and a role.

genisys creates and destroys resources that cost money, so once tokens are
configured every request but the health checks must carry one
(``Authorization: Bearer <token>``). An ``admin`` token may do anything; a
``read-only`` token may only read (GET). Tokens come from a tokens file and
from ``GENISYS_TOKEN``; several may be valid at once, which is how they are
rotated: add the new one, move the clients, remove the old one.

Secrets are compared in constant time (over their SHA-256 digests, against
every configured token, so neither length nor position leaks) and are never
logged or echoed: only token *names* appear in logs and audit events.
"""

import dataclasses
import hashlib
import hmac
import os
import re
import stat

from genisys import files
from genisys.errors import ConfigError, Forbidden, Unauthenticated
from genisys.model import VISIBLE_ASCII

ADMIN = "admin"
READ_ONLY = "read-only"
ROLES = (ADMIN, READ_ONLY)
#: Methods that change something: a read-only token gets 403 on them.
WRITE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})
#: Shortest secret accepted: long enough that guessing is hopeless.
MIN_SECRET_LENGTH = 16
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_SECRET = re.compile("[%s]+" % VISIBLE_ASCII)  # what a header carries safely


@dataclasses.dataclass(frozen=True)
class Token:
    name: str
    secret: str = dataclasses.field(repr=False)
    role: str = ADMIN

    def may(self, method):
        return self.role == ADMIN or method.upper() not in WRITE_METHODS


def validate_token(name, secret, role, where):
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError("%s.name: must be 1 to 63 letters, digits, '.', '_' or '-', got %r"
                          % (where, name), field="auth")
    if not isinstance(secret, str) or not _SECRET.fullmatch(secret):
        raise ConfigError("%s.token: must be a string of visible ASCII characters" % where,
                          field="auth")
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError("%s.token: must be at least %d characters long, got %d"
                          % (where, MIN_SECRET_LENGTH, len(secret)), field="auth")
    if role not in ROLES:
        raise ConfigError("%s.role: must be one of %s, got %r" % (where, ", ".join(ROLES), role),
                          field="auth")
    return Token(name=name, secret=secret, role=role)


def load_tokens_file(path):
    """The tokens of a YAML file: a list of {name, token, role (default admin)}."""
    name = "the tokens file %s" % path
    data = files.load_yaml(path, field="genisys.tokens_file", name=name, quote=False)
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise ConfigError("cannot read %s: %s" % (name, e.strerror or e),
                          field="genisys.tokens_file") from e
    if not isinstance(data, list) or not data:
        raise ConfigError("the tokens file %s must be a non-empty list of {name, token, role}"
                          % path, field="genisys.tokens_file")
    tokens = []
    for i, entry in enumerate(data):
        where = "%s: tokens[%d]" % (path, i)
        if not isinstance(entry, dict):
            raise ConfigError("%s: must be a mapping with name, token and role" % where,
                              field="auth")
        unknown = sorted(set(map(str, entry)) - {"name", "token", "role"})
        if unknown:
            raise ConfigError("%s.%s: unknown field" % (where, unknown[0]), field="auth")
        for required in ("name", "token"):
            if required not in entry:
                raise ConfigError("%s.%s: is required" % (where, required), field="auth")
        tokens.append(validate_token(entry["name"], entry["token"], entry.get("role", ADMIN),
                                     where))
    return tokens, bool(mode & (stat.S_IRWXG | stat.S_IRWXO))


def tokens_from_environment(value, *, variable="GENISYS_TOKEN", name="env"):
    """One admin token from an environment variable, or several separated by commas
    (rotation): named ``name``, or ``name-1``, ``name-2``, ..."""
    secrets = [s.strip() for s in value.split(",") if s.strip()]
    if not secrets:
        raise ConfigError("%s is set but empty" % variable, field="auth")
    return [validate_token(name if len(secrets) == 1 else "%s-%d" % (name, i + 1), secret,
                           ADMIN, "%s[%d]" % (variable, i)) for i, secret in enumerate(secrets)]


def check_unique(tokens):
    names, digests = set(), set()
    for token in tokens:
        digest = hashlib.sha256(token.secret.encode()).digest()
        if token.name in names:
            raise ConfigError("two tokens are named %r" % token.name, field="auth")
        if digest in digests:
            raise ConfigError("token %r has the same secret as another one" % token.name,
                              field="auth")
        names.add(token.name)
        digests.add(digest)
    return tokens


class Authenticator:
    """Checks the Authorization header of a request against the configured tokens."""

    def __init__(self, tokens=()):
        self._tokens = [(hashlib.sha256(t.secret.encode()).digest(), t) for t in tokens]

    @property
    def enabled(self):
        return bool(self._tokens)

    def identify(self, header):
        """The token an ``Authorization`` header presents; Unauthenticated if none matches."""
        scheme, _, credentials = (header or "").strip().partition(" ")
        if not header:
            raise Unauthenticated("this request needs a token: Authorization: Bearer <token>",
                                  field="Authorization")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'",
                                  field="Authorization")
        presented = hashlib.sha256(credentials.strip().encode("utf-8", "replace")).digest()
        found = None
        for digest, token in self._tokens:  # every one, so timing says nothing
            if hmac.compare_digest(digest, presented):
                found = token
        if found is None:
            raise Unauthenticated("the token is not valid", field="Authorization")
        return found

    @staticmethod
    def authorize(token, method, path):
        """Forbidden unless ``token`` may do ``method`` on ``path``."""
        if not token.may(method):
            raise Forbidden("token %r is read-only: %s %s needs an admin token"
                            % (token.name, method, path))
