"""Fencing, end to end (docs/distributed.md, "Fencing"): a leader's calls carry its term;
once its connector has heard a newer one, its orders are refused, and it steps down."""

from genisys.store.etcd_client import b64
from tests.distributed.conftest import USER, add_compute, upscale, wait_leader, wait_running
from tests.support import wait_for


def test_a_leader_whose_connector_heard_a_newer_term_steps_down_and_orders_nothing(
        start_etcd, start_controller, start_connector, prefix):
    cluster = start_etcd(1)
    connector = start_connector(backend="simulated")
    controller = start_controller(cluster.url(prefix), "ctl")
    assert wait_leader(controller) is controller
    add_compute(controller, connector)
    upscale(controller)
    wait_running(connector, 1)

    # Its term (the revision of its leadership key) and the scope it counts in, from etcd.
    answer = cluster.members[0].call("/v3/kv/range", {"key": b64("%s/leader/reconciler" % prefix)},
                                     token=cluster.token(USER))
    term = int(answer["kvs"][0]["mod_revision"])
    scope = "%s/%s/" % (answer["header"]["cluster_id"], prefix)
    # A newer leader, as far as the connector knows, calls it first.
    r = connector.request("GET", "/service/web/status", headers={
        "Genisys-Term": str(term + 1), "Genisys-Term-Scope": scope})
    assert r.status_code == 200, r.text

    upscale(controller)
    # Its order of term `term` was refused, and it stepped down...
    wait_for(lambda: "a newer leader gives the orders now" in controller.log(), timeout=20,
             message="the refused order in the log")
    assert "leadership lost: " in controller.log()
    # ...then won the election again, with a newer term than any heard: 2 run.
    wait_running(connector, 2)
