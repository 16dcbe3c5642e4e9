"""A connector counts the scale orders it takes by the controller that sent them (the
Genisys-Identity header every genisys sends with its calls), so who ordered what can be
told apart: in distributed mode, only the leader should ever be seen."""

from genisys.connector.metrics import MAX_CALLERS
from tests.connector.common import orders
from tests.support import wait_for


def scale(connector, service, number, caller=None):
    headers = {"Genisys-Identity": caller} if caller is not None else {}
    r = connector.request("POST", "/service/%s/scale" % service, json={"number": number},
                          headers=headers)
    assert r.status_code == 200, r.text


def test_orders_are_counted_by_the_controller_that_sent_them(start_genisys, start_connector):
    connector = start_connector(backend="simulated")
    genisys = start_genisys("--identity", "ctl-a")
    assert genisys.request("PUT", "/compute/sim", json={"connector": connector.url}) \
        .status_code == 201
    r = genisys.request("POST", "/service/web/scale", json={"compute": "sim", "number": 3})
    assert r.status_code == 202
    wait_for(lambda: orders(connector).get("ctl-a", 0) >= 1, timeout=30,
             message="ctl-a's order counted")
    assert set(orders(connector)) == {"ctl-a"}


def test_a_caller_cannot_grow_the_metrics_without_bound(start_connector):
    connector = start_connector(backend="simulated")
    scale(connector, "web", 1)  # no header: an older genisys, or another client
    scale(connector, "web", 1, caller="bad name")  # not a controller name
    for i in range(MAX_CALLERS + 3):
        scale(connector, "web", 1, caller="ctl-%d" % i)
    counted = orders(connector)
    assert counted.pop("unknown") == 2 and counted.pop("other") == 3
    assert counted == {"ctl-%d" % i: 1.0 for i in range(MAX_CALLERS)}
