"""State stores: one interface (``Store``), one class per backend.

``store_from_url`` picks the backend from a URL:

* ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (the
  SQLAlchemy convention: the path is what follows ``sqlite:///``);
* ``etcd://host:port[,host:port...][/prefix]``: etcd v3 (3.4 or newer), shared
  by several controllers; keys live under ``prefix/`` (default ``genisys/``);
  ``etcd+https://`` the same over TLS (as is ``etcd://`` given a CA, certificate
  or key file: ``EtcdSecurity``);
* ``memory://`` for tests.
"""

import dataclasses
from typing import Any

from genisys.errors import ConfigError
from genisys.store.base import (
    DELETE,
    Compacted,
    Condition,
    Event,
    Listing,
    Op,
    Record,
    Store,
    Watch,
    replacing,
)

__all__ = ["DELETE", "Compacted", "Condition", "Event", "Listing", "Op", "Record", "Store",
           "Watch", "replacing", "store_from_url", "validate_store_url"]

SCHEMES = ("sqlite", "etcd", "etcd+https", "memory")


def validate_store_url(url: object, field: str = "store") -> tuple[str, str]:
    """Check a store URL without opening anything; returns (scheme, location)."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError("%r is not a store URL (expected sqlite:///path/genisys.db, "
                          "etcd://host:port[,host:port...] or memory://)" % (url,), field=field)
    scheme, rest = url.split("://", 1)
    if scheme == "memory":
        if rest:
            raise ConfigError("memory:// takes no location, got %r" % url, field=field)
        return scheme, ""
    if scheme == "sqlite":
        if not rest.startswith("/") or len(rest) < 2:
            raise ConfigError("%r: a sqlite URL is sqlite:///relative/path.db or "
                              "sqlite:////absolute/path.db" % url, field=field)
        return scheme, rest[1:]
    if scheme in ("etcd", "etcd+https"):
        from genisys.store.etcd import parse_location
        try:
            parse_location(rest)
        except ValueError as e:
            raise ConfigError("%r: %s (an etcd URL is %s://host:port[,host:port...][/prefix])"
                              % (url, e, scheme), field=field) from None
        return scheme, rest
    raise ConfigError("unknown store scheme %r in %r (supported: %s)"
                      % (scheme, url, ", ".join(s + "://" for s in SCHEMES)), field=field)


def store_from_url(url: str, *, etcd_security: Any = None) -> Store:
    """A not yet opened store for ``url``; open it with ``async with``. ``etcd_security``:
    an ``EtcdSecurity`` (TLS files, user) for an etcd store."""
    scheme, location = validate_store_url(url)
    if scheme == "memory":
        from genisys.store.memory import MemoryStore
        return MemoryStore()
    if scheme in ("etcd", "etcd+https"):
        from genisys.store.etcd import EtcdStore, parse_location
        from genisys.store.etcd_client import EtcdSecurity
        security = etcd_security or EtcdSecurity()
        if scheme == "etcd+https" or security.ca_file or security.cert_file \
                or security.key_file:
            security = dataclasses.replace(security, tls=True)
        endpoints, prefix = parse_location(location)
        return EtcdStore(endpoints, prefix, security=security)
    from genisys.store.sqlite import SqliteStore
    return SqliteStore(location)
