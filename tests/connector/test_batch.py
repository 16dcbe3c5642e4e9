"""The batch extension through real connectors: GET /capabilities, POST /batch/status and
POST /batch/scale answer what the per-service endpoints answer, service by service, with
per-service errors as entries; --no-batch turns them into 404s; tokens, bad bodies,
limits and metrics as for every other endpoint."""

import asyncio
import uuid

import pytest

from genisys import cli
from genisys.connector import batch
from genisys.errors import BackendUnavailable, GenisysError, ServiceNotDefined
from tests.connector.common import (
    MIXED_ORDERS,
    SLEEPER,
    alive,
    answered_within,
    at_once,
    changes,
    define,
    error_of,
    one_after_the_other,
    running,
    scale,
    starts,
)
from tests.support import ConnectorProcess, wait_for

CAPABILITIES = {"batch": {"maxServices": 1000}}
SECRET = "connector-secret-0123456789"


def batch_status(connector, names, **kwargs):
    return connector.request("POST", "/batch/status", json={"services": names}, **kwargs)


def batch_scale(connector, orders, **kwargs):
    return connector.request("POST", "/batch/scale", json={"services": orders}, **kwargs)


def services_of(response):
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"services"}, body
    return body["services"]


def as_entry(response):
    """A per-service answer in the shape of a batch entry."""
    if response.status_code == 200:
        return {"running_resources": response.json()["running_resources"]}
    error = response.json()["error"]
    return {"error": {"status": response.status_code, "reason": error["reason"],
                      "message": error["message"]}}


def metric_lines(connector):
    return connector.request("GET", "/metrics").text.splitlines()


# -- offered or not ----------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["simulated", "process"])
def test_bundled_connectors_offer_it(start_connector, backend):
    connector = start_connector(backend=backend)
    r = connector.request("GET", "/capabilities")
    assert r.status_code == 200 and r.json() == CAPABILITIES
    assert services_of(batch_status(connector, ["web"]))  # process: a 404 entry, not a 404


def test_no_batch_answers_404_and_keeps_the_per_service_protocol(start_connector):
    connector = start_connector("--no-batch", backend="simulated")
    for method, path, body in (("GET", "/capabilities", None),
                               ("POST", "/batch/status", {"services": ["web"]}),
                               ("POST", "/batch/scale", {"services": {"web": 1}})):
        error = error_of(connector.request(method, path, json=body), 404)
        assert error["reason"] == "NotFound" and error["field"] == "path"
    assert scale(connector, "web", 2).status_code == 200
    assert running(connector, "web") == 2


def test_the_flag_becomes_the_setting():
    def settings(*args):
        return cli.connector_settings(cli.build_parser().parse_args(["connector", *args]),
                                      environ={})
    assert settings().batch is True
    assert settings("--no-batch").batch is False
    assert settings("--backend", "docker", "--no-batch").batch is False


# -- answers -------------------------------------------------------------------------------


def test_answers_equal_the_per_service_endpoints(start_connector, tmp_path):
    services = tmp_path / "services.yml"
    services.write_text("web: {command: %s}\napi: {command: %s}\nmissing: {command: "
                        "[/nonexistent/program]}\n" % (SLEEPER, SLEEPER))
    connector = start_connector("--services", str(services), "--grace-period", "2s")

    orders = {"web": 2, "api": 1, "nope": 1, "missing": 1}
    entries = services_of(batch_scale(connector, orders))
    assert entries["web"] == {"running_resources": 2}
    assert entries["api"] == {"running_resources": 1}
    # One order failing (undefined, cannot start) never touches the others.
    assert entries["nope"]["error"]["status"] == 404
    assert entries["nope"]["error"]["reason"] == "ServiceNotDefined"
    assert entries["missing"]["error"]["status"] == 422
    assert entries["missing"]["error"]["reason"] == "StartFailed"
    assert "/nonexistent/program" in entries["missing"]["error"]["message"]
    assert len(connector.running_pids("web")) == 2 and len(connector.running_pids("api")) == 1
    # Errors are those of the per-service endpoint, word for word.
    for name in ("nope", "missing"):
        assert entries[name] == as_entry(scale(connector, name, orders[name]))
    assert services_of(batch_scale(connector, {"web": 2})) == {
        "web": {"running_resources": scale(connector, "web", 2).json()["running_resources"]}}

    names = ["web", "api", "nope", "missing"]
    per_service = {n: as_entry(connector.request("GET", "/service/%s/status" % n))
                   for n in names}
    assert services_of(batch_status(connector, names)) == per_service
    assert per_service["web"] == {"running_resources": 2}
    assert per_service["nope"]["error"]["status"] == 404
    assert per_service["missing"] == {"running_resources": 0}

    # Processes being stopped count until they have exited, in a batch as per service.
    assert services_of(batch_scale(connector, {"web": 0, "api": 0})) == {
        "web": {"running_resources": 2}, "api": {"running_resources": 1}}
    stopped = {"web": {"running_resources": 0}, "api": {"running_resources": 0}}
    wait_for(lambda: services_of(batch_status(connector, ["web", "api"])) == stopped,
             message="the stopped processes to stop counting")
    assert {n: as_entry(connector.request("GET", "/service/%s/status" % n))
            for n in ("web", "api")} == stopped
    assert services_of(batch_scale(connector, {"web": 0, "api": 0})) == stopped
    assert "Traceback" not in connector.log()
    lines = metric_lines(connector)
    for line in ['genisys_connector_batch_errors_total{code="404",endpoint="batch_scale"} 1.0',
                 'genisys_connector_batch_errors_total{code="422",endpoint="batch_scale"} 1.0',
                 'genisys_connector_batch_errors_total{code="404",endpoint="batch_status"} 1.0']:
        assert line in lines, lines


def test_simulated_answers_equal_the_per_service_endpoints(start_connector):
    connector = start_connector("--start-delay", "60s", backend="simulated")
    # Orders are taken at once; what runs at that moment is reported, as per service.
    assert services_of(batch_scale(connector, {"a": 3, "b": 1})) == {
        "a": {"running_resources": 0}, "b": {"running_resources": 0}}
    assert scale(connector, "c", 3).json() == {"running_resources": 0, "number": 3}
    assert services_of(batch_status(connector, ["a", "b", "c", "d"])) == {
        n: {"running_resources": 0} for n in "abcd"}


def test_docker_offers_it_and_an_engine_down_is_a_503_entry(start_connector, tmp_path):
    connector = start_connector("--connector-id", "x", backend="docker", env={
        "DOCKER_HOST": "unix://%s" % (tmp_path / "no-engine.sock")})
    assert connector.request("GET", "/capabilities").json() == CAPABILITIES
    connector.request("PUT", "/service/web", json={"image": "busybox:1.36"})
    entries = services_of(batch_status(connector, ["web", "api"]))
    assert entries["web"]["error"]["status"] == 503
    assert entries["web"]["error"]["reason"] == "BackendUnavailable"
    assert entries == {n: as_entry(connector.request("GET", "/service/%s/status" % n))
                       for n in ("web", "api")}
    entries = services_of(batch_scale(connector, {"web": 1}))
    assert entries == {"web": as_entry(scale(connector, "web", 1))}
    assert entries["web"]["error"]["status"] == 503


def test_failures_are_entries_of_a_200(start_connector):
    connector = start_connector("--failure-rate", "1", backend="simulated")
    for response in (batch_status(connector, ["web", "api"]),
                     batch_scale(connector, {"web": 1, "api": 2})):
        entries = services_of(response)
        assert set(entries) == {"web", "api"}
        for name, entry in entries.items():
            assert entry["error"]["status"] == 500
            assert entry["error"]["reason"] == "SimulatedFailure"
            assert name in entry["error"]["message"]
    assert as_entry(connector.request("GET", "/service/web/status"))["error"]["status"] == 500
    assert "Traceback" not in connector.log()


def test_more_orders_than_run_at_once_are_all_carried_out(start_connector):
    """129 orders, more than the 64 a batch runs at a time (the bound itself is checked
    in-process below); the simulated latency is spent once for the whole request."""
    connector = start_connector("--latency", "200ms", backend="simulated")
    orders = {"s%03d" % i: 1 for i in range(batch.CONCURRENCY * 2 + 1)}
    entries = services_of(batch_scale(connector, orders))
    assert entries == {name: {"running_resources": 1} for name in orders}
    assert services_of(batch_status(connector, list(orders))) == entries


def test_concurrent_batches_end_at_the_last_order_carried_out_for_each_service(
        start_connector):
    """Eight batches at once, each ordering web and api (in opposite directions), and
    per-service orders for web among them: per service, one order after the other. Each
    answer counts what its order left, and the processes still being stopped then; once
    they have exited, each service runs what its last order carried out asked for."""
    connector = start_connector("--grace-period", "2s")
    for name in ("web", "api"):
        define(connector, name, SLEEPER)
    calls = [lambda n=n: batch_scale(connector, {"web": n, "api": 10 - n}) for n in MIXED_ORDERS]
    calls += [lambda: scale(connector, "web", 5), lambda: scale(connector, "web", 10)]
    answers = at_once(calls)
    log = connector.log()
    # Every order is for a count no other order of its service asks for, and none for 0:
    # each is one change in the log.
    histories = {"web": changes(log, "web"), "api": changes(log, "api")}
    for n, answer in zip(MIXED_ORDERS, answers):
        entries = services_of(answer)
        assert set(entries) == {"web", "api"}, entries
        for name, number in (("web", n), ("api", 10 - n)):
            assert answered_within(entries[name]["running_resources"], number,
                                   histories[name]), (name, number, entries, histories[name])
    assert [(r.status_code, r.json()["number"]) for r in answers[-2:]] == [(200, 5), (200, 10)]
    for r in answers[-2:]:
        number = r.json()["number"]
        assert answered_within(r.json()["running_resources"], number, histories["web"]), \
            (r.json(), histories["web"])
    for name, orders in (("web", MIXED_ORDERS + [5, 10]), ("api", [10 - n for n in MIXED_ORDERS])):
        history = histories[name]
        assert one_after_the_other(history, start=0), (name, history)
        assert sorted(to for _, to in history) == sorted(orders)
        last = history[-1][1]
        assert len(connector.running_pids(name)) == last
        wait_for(lambda name=name, last=last:
                 running(connector, name) == last == len(alive(connector, name)),
                 message="%s's stops to end at its last order's count" % name)
        assert starts(log, name) == sum(to - begin for begin, to in history if to > begin)


# -- tokens ----------------------------------------------------------------------------------


def test_a_token_is_required_when_configured(start_connector):
    connector = start_connector(backend="simulated", env={"GENISYS_CONNECTOR_TOKEN": SECRET})
    calls = [("GET", "/capabilities", None), ("POST", "/batch/status", {"services": ["web"]}),
             ("POST", "/batch/scale", {"services": {"web": 1}})]
    for headers in ({}, {"Authorization": "Bearer another-secret-9876"}):
        for method, path, body in calls:
            r = connector.request(method, path, json=body, headers=headers)
            assert error_of(r, 401)["reason"] == "Unauthorized", (path, headers)
    good = {"Authorization": "Bearer " + SECRET}
    answers = [connector.request(m, p, json=b, headers=good) for m, p, b in calls]
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert answers[2].json() == {"services": {"web": {"running_resources": 1}}}
    assert SECRET not in connector.log()


# -- bad requests ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """One simulated connector for the table of bad requests (none of which changes it)."""
    process = ConnectorProcess(str(tmp_path_factory.mktemp("batch")),
                               ["--backend", "simulated"], marker=uuid.uuid4().hex)
    try:
        yield process.start()
    finally:
        process.cleanup()


LONG = "x" * 64
NAMES_1001 = ["s%d" % i for i in range(1001)]

#: id, path, body (JSON, or raw bytes), status, field.
BAD = [
    ("status-not-json", "/batch/status", b'{"services": [', 400, "body"),
    ("status-empty-body", "/batch/status", b"", 400, "body"),
    ("status-array-body", "/batch/status", ["web"], 400, "body"),
    ("status-missing", "/batch/status", {}, 400, "services"),
    ("status-unknown-field", "/batch/status", {"services": ["web"], "all": True}, 400, "all"),
    ("status-object", "/batch/status", {"services": {"web": 1}}, 400, "services"),
    ("status-string", "/batch/status", {"services": "web"}, 400, "services"),
    ("status-null", "/batch/status", {"services": None}, 400, "services"),
    ("status-empty", "/batch/status", {"services": []}, 400, "services"),
    ("status-bad-name", "/batch/status", {"services": ["web", "not_valid"]}, 400,
     "services[1]"),
    ("status-long-name", "/batch/status", {"services": [LONG]}, 400, "services[0]"),
    ("status-number-name", "/batch/status", {"services": ["web", 3]}, 400, "services[1]"),
    ("status-duplicate", "/batch/status", {"services": ["web", "api", "web"]}, 400,
     "services[2]"),
    ("status-too-many", "/batch/status", {"services": NAMES_1001}, 413, "services"),
    ("scale-not-json", "/batch/scale", b'{"services": {"web": 1}', 400, "body"),
    ("scale-missing", "/batch/scale", {}, 400, "services"),
    ("scale-unknown-field", "/batch/scale", {"services": {"web": 1}, "wait": True}, 400,
     "wait"),
    ("scale-array", "/batch/scale", {"services": ["web"]}, 400, "services"),
    ("scale-number", "/batch/scale", {"services": 3}, 400, "services"),
    ("scale-empty", "/batch/scale", {"services": {}}, 400, "services"),
    ("scale-bad-name", "/batch/scale", {"services": {"web": 1, "not_valid": 1}}, 400,
     "services"),
    ("scale-negative", "/batch/scale", {"services": {"web": 1, "api": -1}}, 400,
     "services.api"),
    ("scale-string", "/batch/scale", {"services": {"web": "3"}}, 400, "services.web"),
    ("scale-true", "/batch/scale", {"services": {"web": True}}, 400, "services.web"),
    ("scale-float", "/batch/scale", {"services": {"web": 2.5}}, 400, "services.web"),
    ("scale-null", "/batch/scale", {"services": {"web": None}}, 400, "services.web"),
    ("scale-huge", "/batch/scale", {"services": {"web": 10 ** 9}}, 400, "services.web"),
    ("scale-object", "/batch/scale", {"services": {"web": {"number": 1}}}, 400,
     "services.web"),
    ("scale-duplicate", "/batch/scale", b'{"services": {"web": 1, "web": 2}}', 400, "body"),
    ("scale-too-many", "/batch/scale", {"services": dict.fromkeys(NAMES_1001, 0)}, 413,
     "services"),
    ("scale-too-large", "/batch/scale", b'{"services": {"web": 1}, "pad": "'
     + b"x" * batch.MAX_BATCH_BODY_BYTES + b'"}', 413, "body"),
]


@pytest.mark.parametrize("path,body,status,field", [c[1:] for c in BAD],
                         ids=[c[0] for c in BAD])
def test_bad_requests_are_refused_naming_the_field(simulated, path, body, status, field):
    if isinstance(body, bytes):
        r = simulated.request("POST", path, data=body,
                              headers={"Content-Type": "application/json"})
    else:
        r = simulated.request("POST", path, json=body)
    error = error_of(r, status)
    assert error["field"] == field, error
    assert error["reason"] == {400: "Invalid", 413: "PayloadTooLarge"}[status]
    assert simulated.request("GET", "/metrics").text.count("batch_services_total{") == 0


def test_a_full_batch_over_64_kib_is_taken(simulated):
    names = ["s%s%04d" % ("x" * 58, i) for i in range(batch.MAX_SERVICES)]
    r = batch_scale(simulated, dict.fromkeys(names, 1))
    assert len(r.request.body) > 64 * 1024
    assert services_of(r) == {name: {"running_resources": 1} for name in names}
    assert services_of(batch_status(simulated, names)) == services_of(r)
    assert services_of(batch_scale(simulated, dict.fromkeys(names, 0)))[names[0]] == {
        "running_resources": 0}


def test_other_methods_are_refused(simulated):
    for method, path in (("GET", "/batch/status"), ("PUT", "/batch/scale"),
                         ("POST", "/capabilities")):
        error_of(simulated.request(method, path, json={}), 405)


# -- metrics -------------------------------------------------------------------------------------


def test_batch_requests_and_their_services_are_counted(start_connector):
    connector = start_connector(backend="simulated")
    services_of(batch_status(connector, ["a", "b", "c"]))
    services_of(batch_status(connector, ["a"]))
    services_of(batch_scale(connector, {"a": 2, "b": 1}))
    error_of(batch_scale(connector, {}), 400)
    connector.request("GET", "/capabilities")
    lines = metric_lines(connector)
    for line in [
        'genisys_connector_requests_total{code="200",endpoint="batch_status",method="POST"} 2.0',
        'genisys_connector_requests_total{code="200",endpoint="batch_scale",method="POST"} 1.0',
        'genisys_connector_requests_total{code="400",endpoint="batch_scale",method="POST"} 1.0',
        'genisys_connector_requests_total{code="200",endpoint="capabilities",method="GET"} 1.0',
        'genisys_connector_batch_services_total{endpoint="batch_status"} 4.0',
        'genisys_connector_batch_services_total{endpoint="batch_scale"} 2.0',
        # Each order of a batch is a scale order like any other.
        'genisys_connector_scale_seconds_count{outcome="ok"} 2.0',
        'genisys_connector_resources{service="a"} 2.0',
    ]:
        assert line in lines, "\n".join(lines)
    # Batch requests are not counted as per-service ones.
    assert not [line for line in lines if 'endpoint="status"' in line
                or 'endpoint="scale"' in line]


# -- the batch module on its own ------------------------------------------------------------------


def test_every_call_gets_its_entry_whatever_the_others_do():
    async def call(name):
        if name == "undefined":
            raise ServiceNotDefined("service undefined is not defined", field="name")
        if name == "engine-down":
            raise BackendUnavailable("cannot reach the Docker engine")
        if name == "unmapped":
            raise GenisysError("a domain error without a status")
        if name == "bug":
            raise RuntimeError("a bug")
        await asyncio.sleep(0)
        return len(name)

    names = ["web", "undefined", "engine-down", "unmapped", "bug", "api"]
    entries = asyncio.run(batch.for_each("status", names, call))
    assert list(entries) == names
    internal = {"error": {"status": 500, "reason": "InternalError",
                          "message": "internal error, see the server log"}}
    assert entries == {
        "web": {"running_resources": 3}, "api": {"running_resources": 3},
        "undefined": {"error": {"status": 404, "reason": "ServiceNotDefined",
                                "message": "service undefined is not defined"}},
        "engine-down": {"error": {"status": 503, "reason": "BackendUnavailable",
                                  "message": "cannot reach the Docker engine"}},
        "unmapped": internal, "bug": internal}


def test_no_more_calls_than_the_bound_run_at_once():
    running_now, most = 0, 0

    async def call(name):
        nonlocal running_now, most
        running_now += 1
        most = max(most, running_now)
        await asyncio.sleep(0.001)
        running_now -= 1
        return 1

    names = ["s%d" % i for i in range(200)]
    entries = asyncio.run(batch.for_each("scale", names, call, concurrency=16))
    assert len(entries) == 200 and most == 16
