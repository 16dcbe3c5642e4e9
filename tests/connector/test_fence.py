"""Fencing (docs/connectors.md, "Fencing"): a connector keeps the newest leader term it
has seen in each scope, from any call, and refuses the scale orders of an older one
with 409 StaleTerm; reads are answered, and calls without a term are never fenced. With a
state directory, the newest terms outlive a restart."""

import json
import os

import pytest

from tests.connector.common import SLEEPER, define, error_of, orders
from tests.support import run_genisys, wait_for

SCOPE = "1234/genisys/"


def term(number, scope=SCOPE, caller=None):
    headers = {"Genisys-Term": str(number), "Genisys-Term-Scope": scope}
    if caller is not None:
        headers["Genisys-Identity"] = caller
    return headers


def order(connector, number, headers, service="web"):
    return connector.request("POST", "/service/%s/scale" % service, json={"number": number},
                             headers=headers)


def running(connector, service="web", headers=None):
    r = connector.request("GET", "/service/%s/status" % service, headers=headers or {})
    assert r.status_code == 200, r.text
    return r.json()["running_resources"]


def test_an_order_of_an_older_term_is_refused_and_changes_nothing(start_connector):
    connector = start_connector(backend="simulated")
    assert order(connector, 2, term(7, caller="new")).status_code == 200
    r = order(connector, 5, term(6, caller="old"))
    assert r.status_code == 409
    assert r.json() == {"error": {
        "reason": "StaleTerm", "field": "Genisys-Term",
        "message": "an order of term 6, after a call of term 7 in the same scope "
                   "(1234/genisys/): a newer leader gives the orders now"}}
    assert running(connector) == 2 and orders(connector) == {"new": 1.0}
    # A read of an old term is answered; a read of a newer one raises the fence.
    assert running(connector, headers=term(6)) == 2
    assert running(connector, headers=term(9)) == 2
    assert order(connector, 3, term(8)).status_code == 409
    assert order(connector, 3, term(9)).status_code == 200  # the same term: its leader
    # Other scopes (other installations sharing the connector) and calls without a term
    # are not fenced by it.
    assert order(connector, 4, term(1, scope="1234/other/")).status_code == 200
    assert order(connector, 1, {}).status_code == 200
    wait_for(lambda: running(connector) == 1, timeout=10, message="web at 1")


def test_a_batch_of_orders_of_an_older_term_is_refused_whole(start_connector):
    connector = start_connector(backend="simulated")
    r = connector.request("POST", "/batch/scale", json={"services": {"a": 1, "b": 1}},
                          headers=term(5))
    assert r.status_code == 200, r.text
    r = connector.request("POST", "/batch/scale", json={"services": {"a": 3, "b": 3}},
                          headers=term(4))
    assert (r.status_code, r.json()["error"]["reason"]) == (409, "StaleTerm")
    assert running(connector, "a") == 1 and running(connector, "b") == 1


def test_a_malformed_term_is_refused_naming_the_header(start_connector):
    connector = start_connector(backend="simulated")
    for headers, field, message in [
            ({"Genisys-Term": "seven", "Genisys-Term-Scope": SCOPE}, "Genisys-Term",
             "must be a positive integer below 10^19, sent with Genisys-Term-Scope, got "
             "'seven'"),
            ({"Genisys-Term": "0", "Genisys-Term-Scope": SCOPE}, "Genisys-Term",
             "must be a positive integer below 10^19, sent with Genisys-Term-Scope, got '0'"),
            ({"Genisys-Term": "7"}, "Genisys-Term-Scope",
             "must be 1 to 255 visible ASCII characters, sent with Genisys-Term"),
            ({"Genisys-Term-Scope": SCOPE}, "Genisys-Term",
             "must be a positive integer below 10^19, sent with Genisys-Term-Scope")]:
        r = order(connector, 2, headers)
        assert r.status_code == 400, r.text
        assert r.json() == {"error": {"reason": "Invalid", "field": field,
                                      "message": message}}
    assert running(connector) == 0


def test_the_newest_term_outlives_a_restart_of_a_connector_with_a_state_directory(
        start_connector):
    connector = start_connector()  # the process backend
    define(connector, "web", SLEEPER)
    assert order(connector, 1, term(7, caller="new")).status_code == 200
    with open(os.path.join(connector.state_dir, "terms.json"), encoding="utf-8") as f:
        assert json.load(f) == {"terms": {SCOPE: 7}}
    connector.kill()  # no clean stop: the term was kept when it came
    again = start_connector(state_dir=connector.state_dir)
    # The deposed leader's late order, right after the restart: refused.
    assert error_of(order(again, 3, term(6, caller="old")), 409)["reason"] == "StaleTerm"
    assert running(again) == 1
    assert order(again, 0, term(7, caller="new")).status_code == 200
    wait_for(lambda: running(again) == 0, timeout=20, message="web stopped")


@pytest.mark.parametrize("content, message", [
    ("{not json", "cannot read the fencing terms {path}: "),
    ('{"terms": {"1234/genisys/": -1}}',
     'the fencing terms file {path} does not hold {{"terms": {{scope: positive integer}}}}'),
    ('["7"]', 'the fencing terms file {path} does not hold')])
def test_a_terms_file_that_cannot_be_used_stops_the_start_naming_it(tmp_path, content, message):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    path = state_dir / "terms.json"
    path.write_text(content)
    result = run_genisys(["connector", "--port", "0", "--state-dir", str(state_dir)],
                         cwd=str(tmp_path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert message.format(path=path) in lines[0]
    assert "move it away to start afresh" in lines[0]
    assert path.read_text() == content
