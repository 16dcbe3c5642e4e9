"""Service definitions over HTTP, and every kind of bad request refused without a trace.

One real connector (process backend, module scope) serves the bad-request table. It
has service ``web`` defined with one process running. For every case the test reads
the state file, the definitions and the status before and after: a refused request
changes nothing.
"""

import json
import os
import signal
import uuid

import pytest
import requests

from genisys.connector.definitions import Definition, load_definitions_file
from genisys.errors import ConfigError, Invalid
from tests.connector.common import SLEEPER, define, error_of, running, scale
from tests.support import ConnectorProcess

MAX_BODY_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def connector(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("bad-requests")
    state_dir = str(workdir / "state")
    process = ConnectorProcess(str(workdir), ["--state-dir", state_dir, "--grace-period", "2s"],
                               state_dir=state_dir, marker=uuid.uuid4().hex)
    try:
        process.start()
        define(process, "web", SLEEPER)
        assert scale(process, "web", 1).status_code == 200
        yield process
    finally:
        process.cleanup()


def snapshot(connector):
    with open(os.path.join(connector.state_dir, "state.json"), "rb") as f:
        state = f.read()
    return state, connector.request("GET", "/service").json(), running(connector, "web")


JSON = {"Content-Type": "application/json"}
GOOD = {"name": "api", "command": ["true"]}

#: id, method, path, body (dict/list/str: JSON; bytes: raw), status, reason, field.
CASES = [
    # -- scale ---------------------------------------------------------------------
    ("scale-bad-json", "POST", "/service/web/scale", b'{"number": ', 400, "Invalid", "body"),
    ("scale-empty-body", "POST", "/service/web/scale", b"", 400, "Invalid", "body"),
    ("scale-array", "POST", "/service/web/scale", [3], 400, "Invalid", "body"),
    ("scale-negative", "POST", "/service/web/scale", {"number": -1}, 400, "Invalid", "number"),
    ("scale-string", "POST", "/service/web/scale", {"number": "3"}, 400, "Invalid", "number"),
    ("scale-true", "POST", "/service/web/scale", {"number": True}, 400, "Invalid", "number"),
    ("scale-float", "POST", "/service/web/scale", {"number": 2.5}, 400, "Invalid", "number"),
    ("scale-null", "POST", "/service/web/scale", {"number": None}, 400, "Invalid", "number"),
    ("scale-huge", "POST", "/service/web/scale", {"number": 10 ** 9}, 400, "Invalid", "number"),
    ("scale-missing", "POST", "/service/web/scale", {}, 400, "Invalid", "number"),
    ("scale-unknown-field", "POST", "/service/web/scale", {"number": 1, "compute": "x"}, 400,
     "Invalid", "compute"),
    ("scale-duplicate-field", "POST", "/service/web/scale", b'{"number": 1, "number": 2}', 400,
     "Invalid", "body"),
    ("scale-nan", "POST", "/service/web/scale", b'{"number": NaN}', 400, "Invalid", "body"),
    ("scale-bad-name", "POST", "/service/bad_name/scale", {"number": 1}, 400, "Invalid", "name"),
    ("scale-undefined", "POST", "/service/nope/scale", {"number": 1}, 404,
     "ServiceNotDefined", "name"),
    ("scale-text-plain", "POST", "/service/web/scale", "text", 415, "UnsupportedMediaType",
     "Content-Type"),
    ("scale-too-large", "POST", "/service/web/scale",
     b'{"number": 1, "pad": "' + b"x" * MAX_BODY_BYTES + b'"}', 413, "PayloadTooLarge", "body"),
    ("scale-get", "GET", "/service/web/scale", None, 405, "MethodNotAllowed", None),
    # -- status --------------------------------------------------------------------
    ("status-undefined", "GET", "/service/nope/status", None, 404, "ServiceNotDefined",
     "name"),
    ("status-bad-name", "GET", "/service/-web/status", None, 400, "Invalid", "name"),
    ("status-post", "POST", "/service/web/status", {"number": 1}, 405, "MethodNotAllowed", None),
    # -- definitions ---------------------------------------------------------------
    ("define-bad-name", "POST", "/service", dict(GOOD, name="bad_name"), 400, "Invalid", "name"),
    ("define-name-not-string", "POST", "/service", dict(GOOD, name=7), 400, "Invalid", "name"),
    ("define-no-name", "POST", "/service", {"command": ["true"]}, 400, "Invalid", "name"),
    ("define-no-command", "POST", "/service", {"name": "api"}, 400, "Invalid", "command"),
    ("define-empty-command", "POST", "/service", dict(GOOD, command=[]), 400, "Invalid",
     "command"),
    ("define-blank-command", "POST", "/service", dict(GOOD, command="  "), 400, "Invalid",
     "command"),
    ("define-unsplittable", "POST", "/service", dict(GOOD, command="echo 'open"), 400,
     "Invalid", "command"),
    ("define-command-number", "POST", "/service", dict(GOOD, command=42), 400, "Invalid",
     "command"),
    ("define-command-object", "POST", "/service", dict(GOOD, command={"a": "b"}), 400,
     "Invalid", "command"),
    ("define-argument-number", "POST", "/service", dict(GOOD, command=["sleep", 5]), 400,
     "Invalid", "command[1]"),
    ("define-empty-program", "POST", "/service", dict(GOOD, command=["", "x"]), 400, "Invalid",
     "command[0]"),
    ("define-nul", "POST", "/service", dict(GOOD, command=["a\u0000b"]), 400, "Invalid",
     "command[0]"),
    ("define-env-list", "POST", "/service", dict(GOOD, environment=["A=1"]), 400, "Invalid",
     "environment"),
    ("define-env-number", "POST", "/service", dict(GOOD, environment={"A": 1}), 400, "Invalid",
     "environment.A"),
    ("define-env-bad-key", "POST", "/service", dict(GOOD, environment={"A=B": "1"}), 400,
     "Invalid", "environment"),
    ("define-cwd-missing", "POST", "/service", dict(GOOD, cwd="/nonexistent/dir"), 400,
     "Invalid", "cwd"),
    ("define-cwd-file", "POST", "/service", dict(GOOD, cwd="/etc/hostname"), 400, "Invalid",
     "cwd"),
    ("define-cwd-number", "POST", "/service", dict(GOOD, cwd=5), 400, "Invalid", "cwd"),
    ("define-unknown-field", "POST", "/service", dict(GOOD, colour="blue"), 400, "Invalid",
     "colour"),
    ("define-exists", "POST", "/service", dict(GOOD, name="web"), 409, "AlreadyExists", "name"),
    ("define-not-object", "POST", "/service", "web", 400, "Invalid", "body"),
    ("put-name-mismatch", "PUT", "/service/web", dict(GOOD, name="other"), 400, "Invalid",
     "name"),
    ("put-bad-url-name", "PUT", "/service/web.1", {"command": ["true"]}, 400, "Invalid", "name"),
    ("put-no-command", "PUT", "/service/web", {"environment": {}}, 400, "Invalid", "command"),
    ("get-undefined", "GET", "/service/nope", None, 404, "NotFound", "name"),
    ("delete-undefined", "DELETE", "/service/nope", None, 404, "NotFound", "name"),
    ("delete-running", "DELETE", "/service/web", None, 409, "Conflict", "name"),
    ("delete-all", "DELETE", "/service", None, 405, "MethodNotAllowed", None),
    # -- elsewhere -----------------------------------------------------------------
    ("unknown-path", "GET", "/compute", None, 404, "NotFound", "path"),
    ("unknown-deep-path", "POST", "/service/web/upscale", {"compute": "x"}, 404, "NotFound",
     "path"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_request_is_refused_and_changes_nothing(connector, case):
    _, method, path, body, status, reason, field = case
    before = snapshot(connector)
    if isinstance(body, bytes):
        r = connector.request(method, path, data=body, headers=JSON)
    elif isinstance(body, str) and status == 415:
        r = connector.request(method, path, data=body, headers={"Content-Type": "text/plain"})
    elif body is None:
        r = connector.request(method, path)
    else:
        r = connector.request(method, path, data=json.dumps(body), headers=JSON)
    error = error_of(r, status)
    assert error["reason"] == reason, error
    assert error.get("field") == field, error
    if status == 405:
        assert r.headers["Allow"]
    if status == 404 and reason == "ServiceNotDefined":
        assert "nope" in error["message"] and "PUT /service/nope" in error["message"]
    assert snapshot(connector) == before


def test_the_connector_survived_the_table(connector):
    assert connector.request("GET", "/healthz").json() == {"status": "ok"}
    assert connector.proc.poll() is None
    assert len(connector.running_pids("web")) == 1


# -- definitions that work ---------------------------------------------------------------


def test_definitions_crud(start_connector, tmp_path):
    connector = start_connector()
    assert connector.request("GET", "/service").json() == {}
    r = connector.request("POST", "/service", json={"name": "api", "command": "sleep 600"})
    assert r.status_code == 201 and r.headers["Location"] == "/service/api"
    api = {"name": "api", "command": ["sleep", "600"], "environment": {}, "cwd": None}
    assert r.json() == api
    assert connector.request("GET", "/service/api").json() == api

    r = connector.request("PUT", "/service/web", json={"command": SLEEPER, "environment":
                                                       {"PORT": "8080"}, "cwd": str(tmp_path)})
    assert r.status_code == 201
    web = {"name": "web", "command": SLEEPER, "environment": {"PORT": "8080"},
           "cwd": str(tmp_path)}
    assert r.json() == web
    assert connector.request("GET", "/service").json() == {"api": api, "web": web}

    r = connector.request("PUT", "/service/api", json={"name": "api", "command": ["true"]})
    assert r.status_code == 200 and r.json()["command"] == ["true"]
    r = connector.request("DELETE", "/service/api")
    assert r.status_code == 200 and r.json()["command"] == ["true"]
    assert connector.request("GET", "/service/api").status_code == 404
    assert list(connector.request("GET", "/service").json()) == ["web"]

    # Definitions made over HTTP survive a restart (they live in the state file).
    assert connector.stop(signal.SIGTERM) == 0
    again = start_connector(state_dir=connector.state_dir)
    assert again.request("GET", "/service").json() == {"web": web}


def test_services_file_is_applied_at_every_start(start_connector, tmp_path):
    services = tmp_path / "services.yml"
    services.write_text("web:\n  command: sleep 600\n  environment: {A: '1'}\n"
                        "worker:\n  command: [sleep, '600']\n")
    connector = start_connector("--services", str(services))
    assert sorted(connector.request("GET", "/service").json()) == ["web", "worker"]
    assert connector.request("GET", "/service/web").json()["environment"] == {"A": "1"}
    connector.request("PUT", "/service/web", json={"command": ["true"]})
    connector.request("PUT", "/service/extra", json={"command": ["true"]})
    assert connector.stop() == 0

    again = start_connector("--services", str(services), state_dir=connector.state_dir)
    definitions = again.request("GET", "/service").json()
    assert sorted(definitions) == ["extra", "web", "worker"]  # the file wins for its entries
    assert definitions["web"]["command"] == ["sleep", "600"]


def test_simulated_backend_keeps_definitions_too(start_connector):
    connector = start_connector(backend="simulated")
    assert connector.request("PUT", "/service/web", json={"command": "x"}).status_code == 201
    assert scale(connector, "web", 2).json() == {"running_resources": 2, "number": 2}
    assert error_of(connector.request("DELETE", "/service/web"), 409)["reason"] == "Conflict"


def test_service_status_and_scale_answer_the_seed_protocol_exactly(start_connector):
    connector = start_connector()
    define(connector, "web", SLEEPER)
    r = requests.get(connector.url + "/service/web/status", timeout=30)
    assert r.status_code == 200 and r.json() == {"running_resources": 0}
    assert r.headers["Content-Type"].startswith("application/json")
    r = requests.post(connector.url + "/service/web/scale", json={"number": 0}, timeout=30)
    assert r.status_code == 200 and r.json() == {"running_resources": 0, "number": 0}


# -- validation, in-process ----------------------------------------------------------------


def test_definition_validation_names_the_field():
    assert Definition.from_body({"name": "w", "command": "a 'b c'"}).command == ("a", "b c")
    with pytest.raises(Invalid) as e:
        Definition.from_body({"command": ["x"], "environment": {"A": None}}, name="w")
    assert e.value.field == "environment.A"
    with pytest.raises(Invalid) as e:
        Definition.from_body({"name": "w", "command": ["x"] * 1025})
    assert e.value.field == "command" and "at most 1024" in e.value.message


@pytest.mark.parametrize("name,text,words", [
    ("s.yml", "- name: web\n  command: sleep 1\n- name: api\n", ["s.yml", "entry [1]",
                                                               "command", "is required"]),
    ("s.yml", "web:\n  command: []\n", ["s.yml", "entry web", "command", "empty"]),
    ("s.yml", "bad_name:\n  command: x\n", ["s.yml", "entry bad_name", "not a valid name"]),
    ("s.yml", "web:\n  name: api\n  command: x\n", ["entry web", "does not match"]),
    ("s.yml", "- {name: a, command: x}\n- {name: a, command: y}\n", ["entry [1]", "twice"]),
    ("s.yml", "web: [\n", ["s.yml", "not valid YAML"]),
    ("s.json", '{"web": {"command": "x",}}', ["s.json", "not valid JSON"]),
    ("s.yml", "just text\n", ["s.yml", "must be a list", "string"]),
    ("s.yml", "web:\n  command: x\n  cwd: /nonexistent/dir\n", ["entry web", "cwd",
                                                                 "not an existing directory"]),
])
def test_bad_services_file_names_file_and_entry(tmp_path, name, text, words):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_definitions_file(str(path))
    for word in words:
        assert word in str(e.value), str(e.value)


def test_services_file_forms(tmp_path):
    as_list = tmp_path / "list.json"
    as_list.write_text(json.dumps([{"name": "a", "command": ["x"]}]))
    as_map = tmp_path / "map.yaml"
    as_map.write_text("a:\n  command: [x]\n")
    empty = tmp_path / "empty.yml"
    empty.write_text("")
    assert load_definitions_file(str(as_list)) == load_definitions_file(str(as_map))
    assert load_definitions_file(str(empty)) == []
