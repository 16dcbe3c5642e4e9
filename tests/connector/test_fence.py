"""Fencing (docs/connectors.md, "Fencing"): a connector keeps the newest leader term it
has seen in each scope, from any call, and refuses the scale orders of an older one
with 409 StaleTerm; reads are answered, and calls without a term are never fenced."""

from tests.connector.common import orders
from tests.support import wait_for

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
