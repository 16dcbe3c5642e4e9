"""API tokens in the configuration: the tokens file, GENISYS_TOKEN, and the loopback rule."""

import os

import pytest
import requests

from genisys.config import load_settings
from genisys.errors import ConfigError
from tests.cli.test_serve import one_line_error
from tests.support import run_genisys

GOOD = """\
- name: ops
  token: admin-secret-0123456789
- name: dashboard
  token: reader-secret-0123456789
  role: read-only
"""


@pytest.fixture(autouse=True)
def in_empty_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def tokens_file(text, mode=0o600):
    with open("tokens.yml", "w") as f:
        f.write(text)
    os.chmod("tokens.yml", mode)
    return "tokens.yml"


def test_tokens_from_the_file_and_the_environment():
    s = load_settings({"--tokens-file": tokens_file(GOOD)},
                      {"GENISYS_TOKEN": "env-secret-0123456789a, env-secret-0123456789b"})
    assert [(t.name, t.role) for t in s.auth.tokens] == [
        ("ops", "admin"), ("dashboard", "read-only"), ("env-1", "admin"), ("env-2", "admin")]
    assert "secret" not in repr(s)  # settings can be logged without leaking a token
    assert load_settings({}, {}).auth.tokens == ()


@pytest.mark.parametrize("text, words", [
    ("- name: ops\n  token: short\n", "tokens[0].token: must be at least 16 characters"),
    ("- name: ops\n  token: admin-secret-0123456789\n  role: root\n",
     "tokens[0].role: must be one of admin, read-only, got 'root'"),
    ("- name: ops\n  token: admin-secret-0123456789\n  scope: all\n",
     "tokens[0].scope: unknown field"),
    ("- name: ops\n", "tokens[0].token: is required"),
    ("- token: admin-secret-0123456789\n", "tokens[0].name: is required"),
    ("- name: a b\n  token: admin-secret-0123456789\n", "tokens[0].name: must be"),
    ("- name: ops\n  token: 12345678901234567890\n", "tokens[0].token: must be a string"),
    ("- name: ops\n  token: admin secret 0123456789\n", "visible ASCII"),
    (GOOD + "- name: ops\n  token: other-secret-0123456789\n", "two tokens are named 'ops'"),
    (GOOD + "- name: again\n  token: admin-secret-0123456789\n", "same secret"),
    ("ops: admin-secret-0123456789\n", "must be a non-empty list"),
    ("[]\n", "must be a non-empty list"),
    ("- [unclosed\n", "not valid YAML"),
    ("- oops\n", "tokens[0]: must be a mapping"),
    # The line a YAML error is on is never quoted: it may hold a secret.
    ("- name: ops\n  token: admin-secret-0123456789: x\n", "not valid YAML"),
    ("- name: ops\n  token: admin-secret-0123456789\n  role: [\n", "not valid YAML"),
    ("- name: ops\n  token: *admin-secret-0123456789\n", "found undefined alias ... (line 2"),
    ("[" * 999, "tokens.yml is nested too deeply"),
    ("- name: ops\n  token: admin-secret-0123456789\n  role: " + "[" * 40 + "]" * 40 + "\n",
     "tokens.yml is nested too deeply"),
    ("- &a {name: *a, token: admin-secret-0123456789}\n", "contains itself"),
    ("- name: 0x" + "f" * 4000 + "\n  token: admin-secret-0123456789\n",
     "tokens.yml: line 1, column 9: cannot use this value: a number with more than"),
])
def test_bad_tokens_files_are_refused_with_the_entry_and_field(text, words):
    with pytest.raises(ConfigError) as caught:
        load_settings({"--tokens-file": tokens_file(text)}, {})
    assert words in str(caught.value)
    assert "0123456789" not in str(caught.value)  # never the secret itself


def test_a_tokens_file_that_is_not_utf8_is_refused():
    with open("tokens.yml", "wb") as f:
        f.write(b"- name: ops\n  token: admin-secret-0123456789\x80\n")
    os.chmod("tokens.yml", 0o600)
    with pytest.raises(ConfigError, match="cannot read the tokens file tokens.yml: line 2 is "
                                          "not UTF-8"):
        load_settings({"--tokens-file": "tokens.yml"}, {})


def test_a_tokens_file_others_can_read_is_refused():
    with pytest.raises(ConfigError, match="can be read by other users: chmod 600"):
        load_settings({"--tokens-file": tokens_file(GOOD, 0o644)}, {})
    with pytest.raises(ConfigError, match="cannot read the tokens file missing.yml"):
        load_settings({"--tokens-file": "missing.yml"}, {})


@pytest.mark.parametrize("value, words", [
    ("", "GENISYS_TOKEN is set but empty"),
    ("short", "GENISYS_TOKEN[0].token: must be at least 16"),
    ("env-secret-0123456789a,env-secret-0123456789a", "same secret"),
])
def test_bad_genisys_token(value, words):
    with pytest.raises(ConfigError) as caught:
        load_settings({}, {"GENISYS_TOKEN": value})
    assert words in str(caught.value)


def test_listening_beyond_loopback_needs_tokens_or_an_explicit_switch():
    for bind in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert load_settings({"--bind": bind}, {}).server.bind == bind
    with pytest.raises(ConfigError, match="refusing to listen on 0.0.0.0 without API tokens"):
        load_settings({"--bind": "0.0.0.0"}, {})
    assert load_settings({"--bind": "0.0.0.0"},
                         {"GENISYS_TOKEN": "env-secret-0123456789a"}).server.bind == "0.0.0.0"
    s = load_settings({"--bind": "0.0.0.0", "--insecure-bind-any": "true"}, {})
    assert s.auth.insecure_bind_any is True
    with pytest.raises(ConfigError, match="must be true or false"):
        load_settings({}, {"GENISYS_INSECURE_BIND_ANY": "maybe"})


def test_serve_refuses_an_exposed_port_without_tokens(tmp_path):
    result = run_genisys(["serve", "--bind", "0.0.0.0", "--port", "0", "--store", "memory://"],
                         cwd=str(tmp_path))
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without API tokens" in one_line_error(result)


def test_insecure_bind_any_starts_with_a_warning(start_genisys):
    genisys = start_genisys("--bind", "0.0.0.0", "--insecure-bind-any")
    assert genisys.request("GET", "/service").status_code == 200
    genisys.stop()
    assert "INSECURE: listening on 0.0.0.0 without API tokens" in genisys.log()


def test_a_real_server_with_genisys_token(start_genisys):
    secret = "env-secret-0123456789a"
    genisys = start_genisys(env={"GENISYS_TOKEN": secret})
    r = genisys.request("POST", "/compute", json={"name": "c", "connector": "http://h:1"})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Bearer realm="genisys"'
    r = genisys.request("POST", "/compute", json={"name": "c", "connector": "http://h:1"},
                        headers={"Authorization": "Bearer " + secret})
    assert r.status_code == 201
    assert requests.get(genisys.url + "/healthz", timeout=10).status_code == 200
    genisys.stop()
    log = genisys.log()
    assert "API tokens: env (admin)" in log and secret not in log
