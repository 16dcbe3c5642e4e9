"""Service definitions of a connector: how to run one resource of a service.

A definition is ``{"name", "command", "environment", "cwd"}``: ``command`` is
a list of arguments (a string is split like a shell would, never run by
one), ``environment`` is added to the connector's own, ``cwd`` is an existing
directory (relative paths are relative to the connector's working
directory). Everything that enters a connector (an HTTP body, a ``--services``
file) is validated here and refused with ``Invalid`` naming the field.
"""

import dataclasses
import os
import shlex
from typing import Optional

from genisys import files
from genisys.errors import ConfigError, Invalid
from genisys.model import (
    ServiceName,
    body_name,
    describe,
    type_name,
    validate_name,
)

#: Longest command accepted, in arguments (the kernel's own limit is on bytes).
MAX_ARGUMENTS = 1024


@dataclasses.dataclass(frozen=True)
class Definition:
    """How the process backend runs one resource of ``name``."""

    name: ServiceName
    command: tuple
    #: Added to the connector's environment (a key here wins).
    environment: tuple = ()  # sorted (key, value) pairs: hashable, so the object stays frozen
    cwd: Optional[str] = None

    @classmethod
    def from_body(cls, body, *, name=None, check_cwd=True):
        """Validate a definition; ``name`` comes from the URL when given.

        ``check_cwd=False`` accepts a cwd that is gone (definitions read back
        from a state file must not be lost for it; starting will say why)."""
        name = body_name(body, name, required=("command",), optional=("environment", "cwd"))
        return cls(name=validate_name(name, "name"),
                   command=validate_command(body["command"], "command"),
                   environment=validate_environment(body.get("environment", {}), "environment"),
                   cwd=validate_cwd(body.get("cwd"), "cwd", check=check_cwd))

    def to_json(self):
        return {"name": self.name, "command": list(self.command),
                "environment": dict(self.environment), "cwd": self.cwd}


def validate_command(value, field):
    if isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as e:
            raise Invalid("cannot be split into arguments: %s" % e, field=field) from e
        if not value:
            raise Invalid("must name a program to run, got an empty command", field=field)
    elif isinstance(value, list):
        if not value:
            raise Invalid("must name a program to run, got an empty list", field=field)
        for i, arg in enumerate(value):
            if not isinstance(arg, str):
                raise Invalid("must be a string, got %s %s" % (type_name(arg), describe(arg)),
                              field="%s[%d]" % (field, i))
    else:
        raise Invalid("must be a list of arguments or a string, got %s" % type_name(value),
                      field=field)
    if len(value) > MAX_ARGUMENTS:
        raise Invalid("has %d arguments, at most %d are allowed" % (len(value), MAX_ARGUMENTS),
                      field=field)
    if not value[0]:
        raise Invalid("the program to run (first argument) is empty", field=field + "[0]")
    for i, arg in enumerate(value):
        if "\0" in arg:
            raise Invalid("contains a NUL character", field="%s[%d]" % (field, i))
    return tuple(value)


def validate_environment(value, field):
    if not isinstance(value, dict):
        raise Invalid("must be an object mapping variable names to strings, got %s"
                      % type_name(value), field=field)
    for key, text in value.items():
        if not isinstance(key, str):  # YAML keys may be numbers, booleans or null
            raise Invalid("variable names must be strings, got %s %s"
                          % (type_name(key), describe(key)), field=field)
        if not key or "=" in key or "\0" in key:
            raise Invalid("%s is not a valid environment variable name" % describe(key),
                          field=field)
        if not isinstance(text, str):
            raise Invalid("must be a string, got %s %s" % (type_name(text), describe(text)),
                          field="%s.%s" % (field, key))
        if "\0" in text:
            raise Invalid("contains a NUL character", field="%s.%s" % (field, key))
    return tuple(sorted(value.items()))


def validate_cwd(value, field, *, check=True):
    if value is None:
        return None
    if not isinstance(value, str) or not value or "\0" in value:
        raise Invalid("must be a directory path, got %s %s" % (type_name(value),
                                                              describe(value)), field=field)
    if check and not os.path.isdir(value):
        raise Invalid("%s is not an existing directory" % describe(value), field=field)
    return value


# -- the --services file -------------------------------------------------------


def load_definitions_file(path, definition_class=Definition):
    """The definitions of a ``--services`` file (YAML or JSON), validated as
    ``definition_class`` (the backend's) does.

    The file is either a list of definitions or a mapping name -> definition
    (where ``name`` may be left out). Every error is a ConfigError naming the
    file and the entry."""
    data = files.load_data(path, field="--services")
    if data is None:
        return []
    if isinstance(data, list):
        entries = [("[%d]" % i, None, body) for i, body in enumerate(data)]
    elif isinstance(data, dict):
        entries = [(str(name), name, body) for name, body in data.items()]
    else:
        raise ConfigError("%s must be a list of service definitions or a mapping of service "
                          "names to definitions, got %s" % (path, type_name(data)),
                          field="--services")
    definitions = {}
    for where, key, body in entries:
        try:
            if key is not None and not isinstance(key, str):
                raise Invalid("service names must be strings, got %s" % type_name(key),
                              field="name")
            definition = definition_class.from_body(body, name=key)
        except Invalid as e:
            raise ConfigError("%s: entry %s: %s" % (path, where, e), field="--services") from e
        if definition.name in definitions:
            raise ConfigError("%s: entry %s: service %s is defined twice"
                              % (path, where, definition.name), field="--services")
        definitions[definition.name] = definition
    return list(definitions.values())
