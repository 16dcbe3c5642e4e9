"""Settings: defaults < genisys.yml < GENISYS_* < flags, and clear errors for bad ones."""

import os

import pytest

from genisys.computefile import load_compute_file
from genisys.config import OPTIONS, load_settings, parse_duration
from genisys.connector.definitions import load_definitions_file
from genisys.errors import ConfigError


@pytest.fixture(autouse=True)
def in_empty_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def test_defaults_are_the_documented_ones():
    s = load_settings({}, {})
    assert (s.server.bind, s.server.port) == ("127.0.0.1", 7001)
    assert s.store.url == "sqlite:///./var/genisys.db"
    assert s.intents.max_replicas == 1000
    assert s.intents.compute_file is None  # ./computes.py absent
    assert (s.connector.poll_interval, s.connector.timeout) == (15.0, 10.0)
    assert s.config_file is None


def test_computes_py_in_the_working_directory_is_picked_up():
    write("computes.py", "")
    assert load_settings({}, {}).intents.compute_file == "./computes.py"


def test_every_option_has_a_key_an_env_and_a_flag():
    keys = {o.key for o in OPTIONS}
    for key in ["genisys.bind", "genisys.port", "genisys.compute_file", "genisys.store",
                "genisys.max_replicas", "connector.poll_interval", "connector.timeout"]:
        assert key in keys
    for o in OPTIONS:
        section, name = o.key.upper().split(".")
        assert o.env in ("GENISYS_" + name, "GENISYS_%s_%s" % (section, name))
        assert o.flag.startswith("--")


def test_precedence_file_then_environment_then_flags(tmp_path):
    write("genisys.yml", "genisys:\n  port: 7100\n  max_replicas: 5\n  bind: 0.0.0.0\n"
          "  insecure_bind_any: true\nconnector:\n  poll_interval: 30s\n  timeout: 2s\n")
    s = load_settings({}, {})
    assert (s.server.port, s.intents.max_replicas, s.server.bind) == (7100, 5, "0.0.0.0")
    assert (s.connector.poll_interval, s.connector.timeout) == (30.0, 2.0)
    assert s.config_file == "./genisys.yml"
    s = load_settings({}, {"GENISYS_PORT": "7200", "GENISYS_POLL_INTERVAL": "500ms"})
    assert (s.server.port, s.intents.max_replicas) == (7200, 5)
    assert s.connector.poll_interval == 0.5
    s = load_settings({"--port": "7300", "--poll-interval": "2m"},
                      {"GENISYS_PORT": "7200", "GENISYS_POLL_INTERVAL": "500ms"})
    assert (s.server.port, s.connector.poll_interval, s.server.bind) == (7300, 120.0, "0.0.0.0")


def test_config_path_from_environment_and_flag(tmp_path):
    a = write(tmp_path / "a.yml", "genisys:\n  port: 1111\n")
    b = write(tmp_path / "b.yml", "genisys:\n  port: 2222\n")
    assert load_settings({}, {"GENISYS_CONFIG": a}).server.port == 1111
    assert load_settings({"--config": b}, {"GENISYS_CONFIG": a}).server.port == 2222


def test_empty_config_file_means_defaults():
    write("genisys.yml", "")
    assert load_settings({}, {}).server.port == 7001


@pytest.mark.parametrize("text,seconds", [
    ("15s", 15), ("500ms", 0.5), ("2m", 120), ("1h", 3600), ("10", 10), (3, 3), ("1.5s", 1.5),
])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


BAD = [
    # (where, key or flag, value, words the message must contain)
    ("flag", "--port", "abc", ["genisys.port", "integer", "--port"]),
    ("flag", "--port", "70000", ["genisys.port", "65535"]),
    ("env", "GENISYS_PORT", "-1", ["genisys.port", "GENISYS_PORT"]),
    ("env", "GENISYS_MAX_REPLICAS", "0", ["genisys.max_replicas", "from 1"]),
    ("flag", "--max-replicas", "ten", ["genisys.max_replicas", "integer"]),
    ("env", "GENISYS_POLL_INTERVAL", "fast", ["connector.poll_interval", "duration"]),
    ("flag", "--poll-interval", "0s", ["connector.poll_interval", "more than 0"]),
    ("flag", "--connector-timeout", "-5s", ["connector.timeout", "duration"]),
    ("flag", "--store", "postgres://x", ["genisys.store", "unknown store scheme"]),
    ("flag", "--store", "sqlite:", ["genisys.store", "store URL"]),
    ("env", "GENISYS_STORE", "sqlite://", ["genisys.store", "sqlite:///"]),
    ("flag", "--bind", "not a host!", ["genisys.bind", "not an IP address"]),
    ("flag", "--log-level", "LOUD", ["genisys.log_level", "DEBUG"]),
    ("flag", "--compute-file", "missing.py", ["genisys.compute_file", "does not exist"]),
    ("flag", "--config", "missing.yml", ["config", "does not exist"]),
    # Other scripts' digits: \d and int() take them, the settings don't.
    ("env", "GENISYS_CONNECTOR_TIMEOUT", "\u0661\u0665s", ["connector.timeout", "duration"]),
    ("env", "GENISYS_PORT", "\u0668\u0660", ["genisys.port", "integer"]),
    ("flag", "--port", "1" * 5000, ["genisys.port", "65535", "5000-digit"]),
]


@pytest.mark.parametrize("where,name,value,words", BAD, ids=[b[1] + "=" + b[2] for b in BAD])
def test_bad_values_name_the_setting_and_the_source(where, name, value, words):
    flags, env = ({name: value}, {}) if where == "flag" else ({}, {name: value})
    with pytest.raises(ConfigError) as info:
        load_settings(flags, env)
    message = str(info.value)
    for word in words:
        assert word in message, message


BAD_FILES = [
    ("genisys:\n  port: [1]\n", ["genisys.port", "genisys.yml"]),
    ("genisys:\n  colour: blue\n", ["genisys.colour", "unknown setting"]),
    ("server:\n  port: 1\n", ["unknown section", "server"]),
    ("- a\n- b\n", ["must be a mapping"]),
    ("genisys: [1, 2]\n", ["genisys", "must be a mapping"]),
    ("genisys:\n  port: 1\n port: 2\n", ["not valid YAML"]),
    ("connector:\n  timeout: true\n", ["connector.timeout", "duration"]),
    ("genisys:\n  max_replicas: 2.5\n", ["genisys.max_replicas", "integer"]),
    ("connector:\n  timeout: 1" + "0" * 400 + "\n", ["connector.timeout", "at most 24h"]),
    ("genisys:\n  port: 1" + "0" * 5000 + "\n", ["genisys.yml", "line 2", "4300 digits"]),
    ("genisys:\n  port: 0x" + "f" * 4000 + "\n", ["genisys.yml", "line 2", "4300 digits"]),
    ("genisys:\n  port: 2020-13-01\n", ["genisys.yml", "line 2", "month"]),
    ("[" * 999, ["genisys.yml", "nested too deeply"]),
    ("genisys: {port: " + "[" * 40 + "]" * 40 + "}\n", ["genisys.yml", "nested too deeply"]),
    ("genisys: &a {port: *a}\n", ["genisys.yml", "contains itself"]),
    ("'': {}\n", ["config: unknown section ''"]),
]


@pytest.mark.parametrize("text,words", BAD_FILES)
def test_bad_config_files_are_reported(text, words):
    write("genisys.yml", text)
    with pytest.raises(ConfigError) as info:
        load_settings({}, {})
    for word in words:
        assert word in str(info.value), str(info.value)


def test_a_config_file_that_is_not_utf8_is_reported():
    with open("genisys.yml", "wb") as f:
        f.write(b"genisys:\n  bind: caf\xe9\n")
    with pytest.raises(ConfigError, match="line 2 is not UTF-8"):
        load_settings({}, {})


def test_a_bad_file_value_is_reported_even_when_a_flag_overrides_it():
    """Every layer is validated: a typo in genisys.yml never hides behind a flag."""
    write("genisys.yml", "genisys:\n  port: nope\n")
    with pytest.raises(ConfigError):
        load_settings({"--port": "7001"}, {})


def test_relative_paths_resolve_against_the_working_directory(tmp_path):
    os.mkdir("conf")
    write("conf/computes.py", "")
    s = load_settings({"--compute-file": "conf/computes.py"}, {})
    assert s.intents.compute_file == "conf/computes.py"


def test_limits_and_connector_hosts():
    s = load_settings({"--max-services": "5", "--connector-hosts": "*.internal, 10.0.*"},
                      {"GENISYS_MAX_COMPUTES": "3", "GENISYS_IDLE_TIMEOUT": "2s"})
    assert (s.intents.max_services, s.intents.max_computes) == (5, 3)
    assert s.intents.connector_hosts == ("*.internal", "10.0.*")
    assert (s.server.idle_timeout, s.server.body_timeout) == (2.0, 20.0)
    write("genisys.yml", "genisys:\n  connector_hosts: [a.example, '*.b.example']\n")
    assert load_settings({}, {}).intents.connector_hosts == ("a.example", "*.b.example")
    with pytest.raises(ConfigError, match="genisys.connector_hosts: 'http://x' is not a host"):
        load_settings({"--connector-hosts": "http://x"}, {})
    with pytest.raises(ConfigError, match="genisys.max_services: must be from 1"):
        load_settings({}, {"GENISYS_MAX_SERVICES": "0"})


def test_files_saved_with_a_byte_order_mark_load():
    bom = "\ufeff"
    write("computes.py", bom + 'local = {"name": "local", "connector": "http://h:1"}\n')
    assert [c.name for c in load_compute_file("computes.py")] == ["local"]
    write("services.json", bom + '[{"name": "web", "command": ["sleep", "1"]}]')
    assert [d.name for d in load_definitions_file("services.json")] == ["web"]
    write("genisys.yml", bom + "genisys:\n  port: 7100\n")
    assert load_settings({}, {}).server.port == 7100


@pytest.mark.parametrize("name, text, words", [
    ("genisys.yml", "genisys:\n  port: 7100\n  port: 7200\n",
     "genisys.yml: line 3, column 3: cannot use this value: a key appears twice"),
    ("genisys.yml", "genisys:\n  port: 7100\ngenisys:\n  bind: 127.0.0.2\n",
     "genisys.yml: line 3, column 1: cannot use this value: a key appears twice"),
    ("computes.py", 'a = {"name": "a", "connector": "http://h:1", "name": "b"}\n',
     "computes.py:1: a: key 'name' appears twice"),
])
def test_a_key_given_twice_is_an_error_not_a_silent_choice(name, text, words):
    write(name, text)
    with pytest.raises(ConfigError) as caught:
        if name == "computes.py":
            load_compute_file(name)
        else:
            load_settings({}, {})
    assert words in str(caught.value)


@pytest.mark.parametrize("text, size", [("1MiB", 1 << 20), ("512KiB", 512 << 10),
                                        (" 4096 ", 4096), ("65536B", 65536), ("1GiB", 1 << 30)])
def test_the_largest_connector_answer(text, size):
    assert load_settings({}, {}).connector.max_answer_size == 1 << 20
    assert load_settings({"--connector-max-answer-size": text}, {}).connector.max_answer_size \
        == size
    s = load_settings({}, {"GENISYS_CONNECTOR_MAX_ANSWER_SIZE": text})
    assert s.connector.max_answer_size == size
    write("genisys.yml", "connector:\n  max_answer_size: %s\n" % text)
    assert load_settings({}, {}).connector.max_answer_size == size


@pytest.mark.parametrize("value, words", [
    ("1MB", "'1MB' is not a size (like 1MiB, 512KiB or 65536)"),
    ("1.5MiB", "is not a size"),
    ("4095", "must be from 4KiB to 1GiB, got '4095'"),
    ("2GiB", "must be from 4KiB to 1GiB, got '2GiB'"),
    ("", "is not a size"),
])
def test_a_bad_answer_size_names_the_setting(value, words):
    with pytest.raises(ConfigError) as caught:
        load_settings({}, {"GENISYS_CONNECTOR_MAX_ANSWER_SIZE": value})
    assert caught.value.field == "connector.max_answer_size"
    assert words in caught.value.message
    assert "(from GENISYS_CONNECTOR_MAX_ANSWER_SIZE)" in caught.value.message
