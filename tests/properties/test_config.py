"""Properties of settings (genisys.config, genisys.store.validate_store_url): each parser
turns any value into a setting or a ValueError with the reason; genisys.yml, the
environment and the flags give Settings or a ``ConfigError``, never another exception;
and the values the docs show ("15s", "500ms", ports, addresses) mean what they say."""

import contextlib
import math
import os

import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from genisys import config
from genisys.config import load_settings, parse_bind, parse_duration, parse_port
from genisys.errors import ConfigError
from genisys.store import validate_store_url
from genisys.store.etcd import parse_location
from tests.properties.common import (
    PROPERTY,
    any_value,
    argument_text,
    file_text,
    huge_integers,
    huge_literals,
    integers,
    names,
    nested,
    outcome,
    text,
)

#: Every option, and the one that names genisys.yml itself (GENISYS_CONFIG, --config).
OPTIONS = config.OPTIONS + [config.CONFIG_OPTION]


@contextlib.contextmanager
def in_an_empty_directory(workdir):
    # load_settings also reads ./genisys.yml and ./computes.py when they exist: run it
    # where neither does, not in the checkout (which has a computes.py) nor next to the
    # genisys.yml another example wrote.
    empty = workdir / "empty"
    empty.mkdir(exist_ok=True)
    previous = os.getcwd()
    os.chdir(empty)
    try:
        yield
    finally:
        os.chdir(previous)


def _refusal(call):
    """The ValueError ``call`` refused with (it must give a reason), or None.

    The parsers' documented contract is "a setting, or ValueError with the reason":
    load_settings turns that into a ConfigError naming the setting and its source."""
    try:
        call()
    except ValueError as e:
        assert str(e).strip(), "a refusal without a reason"
        return e
    return None


# -- durations -------------------------------------------------------------------------

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}


@st.composite
def durations(draw):
    """A duration as the docs write it, and the seconds it means (more than 0, at most
    24h)."""
    unit = draw(st.sampled_from(sorted(UNITS)))
    number = draw(st.integers(1, int(86400 / UNITS[unit])))
    space = draw(st.sampled_from(["", " "]))
    return "%s%d%s%s%s" % (space, number, space, unit, space), number * UNITS[unit]


@PROPERTY
@given(durations())
@example(("15s", 15.0))
@example(("500ms", 0.5))
@example(("2m", 120.0))
@example(("1h", 3600.0))
@example(("24h", 86400.0))
def test_durations_parse_to_the_seconds_they_say(duration):
    written, seconds = duration
    assert math.isclose(parse_duration(written), seconds, rel_tol=1e-12)


@PROPERTY
@given(st.integers(1, 86400) | st.floats(min_value=1e-9, max_value=86400))
def test_a_number_of_seconds_is_a_duration(seconds):
    assert parse_duration(seconds) == seconds


@PROPERTY
@given(st.sampled_from(sorted(UNITS)).flatmap(lambda unit: st.tuples(
    st.just(unit), st.integers(0, 0) | st.integers(int(86400 / UNITS[unit]) + 1))))
def test_durations_of_zero_or_over_a_day_are_refused(unit_and_number):
    unit, number = unit_and_number
    assert _refusal(lambda: parse_duration("%d%s" % (number, unit))) is not None


# -- every parser, any value -----------------------------------------------------------

#: What a parser can be handed: any YAML value (dates and bytes too), and text as the
#: environment or the command line give it.
setting_values = any_value | huge_integers | argument_text | integers.map(str) | st.sampled_from(
    ["", " ", "0", "1", "-1", "0x10", "1e3", "1_000", "\u0661\u0665s", " 15 s ", "15S",
     ".5s", "true", "yes", "127.0.0.1", "::1", "localhost", "memory://", "sqlite:///x.db",
     "nan", "inf"])


@PROPERTY
@given(option=st.sampled_from(OPTIONS), value=setting_values)
@example(option=config.OPTIONS[[o.key for o in config.OPTIONS].index("connector.timeout")],
         value=10**400)
def test_a_parser_gives_a_setting_or_a_value_error(option, value):
    _refusal(lambda: option.parse(value))


@PROPERTY
@given(st.integers(0, 65535), st.sampled_from(["%d", " %d ", "%05d"]), st.booleans())
def test_ports_0_to_65535_are_accepted(port, form, as_text):
    assert parse_port(form % port if as_text else port) == port


@PROPERTY
@given(st.ip_addresses().map(str) | st.lists(names, min_size=1, max_size=4).map(".".join))
def test_ip_addresses_and_host_names_are_bind_addresses(address):
    assert parse_bind(address) == address


@PROPERTY
@given(text | st.builds("".join, st.tuples(st.sampled_from(["sqlite", "memory", "etcd", ""]),
                                           st.sampled_from(["://", ":///", ":////", ":/"]),
                                           text)))
def test_any_store_url_is_checked_or_refused(url):
    checked, error = outcome(lambda: validate_store_url(url), ConfigError)
    if error is not None:
        assert error.field == "store"
    elif url == "memory://":
        assert checked == ("memory", "")
    elif url.startswith("etcd://"):
        assert checked == ("etcd", url[len("etcd://"):]) and parse_location(checked[1])
    else:
        assert url.startswith("sqlite:///") and checked == ("sqlite", url[len("sqlite:///"):])
        assert checked[1]


# -- genisys.yml -----------------------------------------------------------------------

SECTIONS = sorted({o.key.split(".")[0] for o in config.OPTIONS})
SETTING_NAMES = sorted({o.key.split(".")[1] for o in config.OPTIONS})

#: YAML-representable values (safe_dump refuses some Python values; no huge ints, whose
#: repr fails, and they come in as text below).
yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | file_text | st.dates()
    | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(file_text | st.integers(), children, max_size=3),
    max_leaves=10)

structured_yml = st.dictionaries(
    st.sampled_from(SECTIONS) | file_text | st.integers() | st.none(),
    st.none() | yaml_values | st.dictionaries(
        st.sampled_from(SETTING_NAMES) | file_text | st.integers() | st.booleans(),
        yaml_values | st.sampled_from(["15s", "500ms", "1h", "7001", "memory://", "INFO"]),
        max_size=4),
    max_size=3,
).flatmap(lambda doc: st.sampled_from([True, False]).map(
    lambda unicode: yaml.safe_dump(doc, allow_unicode=unicode)))

#: Hand-written YAML that parsers trip over: deep nesting, numbers beyond int()'s limit,
#: aliases (one refers to itself), tags, several documents, tabs.
tricky_yml = st.one_of(
    nested("[", "", "]"),
    nested("{a: ", "1", "}"),
    nested("- ", "1"),
    st.tuples(st.sampled_from(SECTIONS), st.sampled_from(SETTING_NAMES), huge_literals)
    .map(lambda t: "%s:\n  %s: %s\n" % t),
    huge_literals.map(lambda n: "genisys:\n  ? %s\n  : 1\n" % n),
    huge_literals.map(lambda n: "? %s\n: 1\n" % n),
    st.sampled_from([
        "genisys: &a {port: *a}\n", "a: &a [*a]\n", "genisys:\n  port: !!python/int 1\n",
        "!!python/object:os.system {}\n", "---\n---\n", "genisys:\n\tport: 1\n",
        "genisys:\n  port: 2020-01-01\n", "connector:\n  timeout: .inf\n",
        "connector:\n  timeout: .nan\n", "genisys:\n  port: 1_000\n", "genisys:\n  port: 1:30\n",
        "genisys:\n  bind: !!binary aGk=\n", "genisys: []\n", "- 1\n", "~\n", "'x'\n",
        "genisys:\n  log_level: [info]\n", "\ufeffgenisys: {}\n"]),
)

genisys_yml = st.one_of(
    structured_yml.map(str.encode),
    tricky_yml.map(str.encode),
    file_text.map(str.encode),
    st.binary(),
)


def _check_config_error(error):
    # "the message names the setting and where it came from" (ConfigError's docstring).
    assert error.field


@PROPERTY
@given(genisys_yml)
@example(b"genisys:\n  port: \xff\n")
@example(b"[" * 5_000)
@example(b"genisys:\n  port: 1" + b"0" * 5_000 + b"\n")
@example(b"'': {}\n")  # a section named '' must not give a ConfigError without a field
def test_any_genisys_yml_is_read_or_is_a_config_error(workdir, content):
    path = workdir / "genisys.yml"
    path.write_bytes(content)
    values, error = outcome(lambda: config._read_config_file(str(path)), ConfigError)
    if error is not None:
        _check_config_error(error)
    else:
        assert set(values) <= {o.key for o in config.OPTIONS}


@PROPERTY
@given(genisys_yml)
@example(b"connector:\n  timeout: 0x" + b"f" * 300 + b"\n")
def test_any_genisys_yml_gives_settings_or_a_config_error(workdir, content):
    path = workdir / "genisys.yml"
    path.write_bytes(content)
    with in_an_empty_directory(workdir):
        settings, error = outcome(lambda: load_settings({"--config": str(path)}, environ={}),
                                  ConfigError)
    if error is not None:
        _check_config_error(error)
    else:
        assert isinstance(settings, config.Settings)


@st.composite
def valid_yml(draw):
    """A genisys.yml with valid values, and what each setting must become."""
    port = draw(st.integers(0, 65535))
    bind = draw(st.sampled_from(["127.0.0.1", "localhost", "::1", "127.1.2.3"]))
    max_replicas = draw(st.integers(1, 1_000_000))
    poll, poll_seconds = draw(durations())
    timeout = draw(st.integers(1, 86400))
    workers = draw(st.integers(1, 1024))
    level = draw(st.sampled_from(["debug", "INFO", "Warning", "ERROR"]))
    document = {
        "genisys": {"port": port, "bind": bind, "max_replicas": draw(st.sampled_from(
            [max_replicas, str(max_replicas)])), "log_level": level, "store": "memory://"},
        "connector": {"poll_interval": poll, "timeout": timeout},
        "reconciler": {"workers": workers},
    }
    expected = {"server.port": port, "server.bind": bind,
                "intents.max_replicas": max_replicas, "log_level": level.upper(),
                "store.url": "memory://", "connector.poll_interval": poll_seconds,
                "connector.timeout": float(timeout), "reconciler.workers": workers}
    return yaml.safe_dump(document), expected


def _setting(settings, target):
    for part in target.split("."):
        settings = getattr(settings, part)
    return settings


@PROPERTY
@given(valid_yml())
def test_a_valid_genisys_yml_lands_in_the_settings(workdir, yml):
    document, expected = yml
    path = workdir / "genisys.yml"
    path.write_text(document, encoding="utf-8")
    with in_an_empty_directory(workdir):
        settings = load_settings({"--config": str(path)}, environ={})
    for target, value in expected.items():
        actual = _setting(settings, target)
        if isinstance(value, float):
            assert math.isclose(actual, value, rel_tol=1e-12), target
        else:
            assert actual == value, target


# -- environment and flags ---------------------------------------------------------------

#: Only options that take a value: a switch flag (--insecure-bind-any) has none.
VALUED = [o for o in OPTIONS if getattr(o, "flag_value", True)]


@PROPERTY
@given(environ=st.dictionaries(st.sampled_from([o.env for o in OPTIONS]),
                               argument_text | setting_values.map(str), max_size=4),
       flags=st.dictionaries(st.sampled_from([o.flag for o in VALUED]),
                             st.none() | argument_text | setting_values.map(str), max_size=4))
def test_any_environment_and_flags_give_settings_or_a_config_error(workdir, environ, flags):
    # Neither the environment nor a command line can carry NUL.
    environ = {k: v.replace("\x00", "") for k, v in environ.items()}
    flags = {k: v if v is None else v.replace("\x00", "") for k, v in flags.items()}
    with in_an_empty_directory(workdir):
        settings, error = outcome(lambda: load_settings(flags, environ=environ), ConfigError)
    if error is not None:
        _check_config_error(error)
    else:
        assert isinstance(settings, config.Settings)
