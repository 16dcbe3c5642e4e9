"""Schemathesis fuzzes a live genisys from its own OpenAPI document: no answer is ever a
5xx, and every answer is one the document describes (status code, headers, content type,
body schema), for valid and invalid requests alike.

One genisys process (module scope) over a SQLite store, with an admin token, serves
every operation. It is seeded with a compute ``local`` on a simulated connector, a
compute ``gone`` whose connector does not listen, and a service ``web`` on both, so that
GETs find a status with every shape (Converged, Unreachable, running null, events).

Fuzzed computes point wherever Schemathesis likes, and a service may end up using one.
The reconciler would then call that address: genisys runs with a proxy that does not
exist as its HTTP proxy (for every host but 127.0.0.1, where the seeded connectors are),
so such a call is refused on this machine instead of leaving it.
"""

import os
import uuid

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import CHECKS

from genisys.api.openapi import document
from genisys.api.watch import MAX_TIMEOUT_SECONDS
from genisys.model import breach
from tests.support import ConnectorProcess, GenisysProcess, free_port, wait_for

TOKEN = "schemathesis-admin-token-0123456789"
AUTH = {"Authorization": "Bearer " + TOKEN}

#: Examples per operation in the fuzzing phase; the examples and coverage phases add the
#: cases the document itself defines (its examples, boundaries, each missing field, ...).
#: About 1,800 cases in all; GENISYS_FUZZ_EXAMPLES=1000 looks harder.
MAX_EXAMPLES = int(os.environ.get("GENISYS_FUZZ_EXAMPLES", "100"))

#: Cases sent (GENISYS_FUZZ_COUNT=1 prints how many at the end of the module).
SENT = []

CONFIG = schemathesis.Config.from_dict({
    # Stateful sequences (links between operations) are not described by the document.
    "phases": {"stateful": {"enabled": False}},
    # The token is not generated (and mutated) with the rest of a case: every call carries
    # the valid one, and the ignored_auth check tries without it and with a wrong one.
    "generation": {"with-security-parameters": False},
    # genisys ignores query parameters it does not know, as HTTP servers do; a body's
    # unknown fields, which it refuses, are still sent.
    "operations": [{"include-name": "GET /audit",
                    "generation": {"allow-extra-parameters": False}}],
    "checks": {
        # Every check Schemathesis has (as `--checks all`).
        "enabled": True,
        # What a valid request may still be refused for is a rule no schema can state:
        # the state is against it. 404: the compute or service it names does not exist;
        # 409: the count is at 0 or max_replicas, the service is being deleted, a limit
        # (max_services, max_computes) is reached, the compute is in use; 412: If-Match
        # names another version than the current one; 422: the Idempotency-Key was used
        # with another body. (401 and 403 do not occur: every call carries the admin
        # token, but the ignored_auth check expects them.)
        "positive_data_acceptance": {"expected-statuses": [
            "2xx", "401", "403", "404", "409", "412", "422"]},
    },
})

schema = schemathesis.openapi.from_dict(document(), config=CONFIG)


def dead_proxy_env():
    """Every connector call except to 127.0.0.1 goes through a proxy that isn't there."""
    dead = "http://127.0.0.1:%d" % free_port()
    env = {"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    for var in ("http_proxy", "https_proxy", "all_proxy"):
        env[var] = env[var.upper()] = dead
    return env


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("schemathesis"))
    connector = ConnectorProcess(workdir, ["--backend", "simulated"], marker=uuid.uuid4().hex)
    genisys = GenisysProcess(
        workdir, ["--store", "sqlite:///" + os.path.join(workdir, "genisys.db")],
        env=dict(dead_proxy_env(), GENISYS_TOKEN=TOKEN), name="schemathesis")
    try:
        connector.start()
        genisys.start()
        seed(genisys, connector)
        served = genisys.request("GET", "/openapi.json", headers=AUTH)
        assert served.status_code == 200 and served.json() == document(), \
            "the live server does not serve the document under test"
        yield genisys
    finally:
        genisys.kill()
        connector.cleanup()


def seed(genisys, connector):
    for compute in ({"name": "local", "connector": connector.url},
                    {"name": "gone", "connector": "http://127.0.0.1:%d" % free_port()}):
        r = genisys.request("POST", "/compute", json=compute, headers=AUTH)
        assert r.status_code == 201, r.text
    r = genisys.request("PUT", "/service/web", json={"replicas": {"local": 2, "gone": 1}},
                        headers=AUTH)
    assert r.status_code == 201, r.text

    def observed():
        status = genisys.request("GET", "/service/web", headers=AUTH).json()["status"]
        conditions = {c: s["condition"] for c, s in status["computes"].items()}
        return conditions == {"local": "Converged", "gone": "Unreachable"}
    wait_for(observed, timeout=20, message="the reconciler to report on the seeded service")


def as_genisys_wants(case):
    """Apply to a valid (positive) case the rule JSON Schema can't state, which the
    document says in words: a ``name`` in a body equals the one in the path. And a
    watch (?watch=1) whose timeoutSeconds is absent or valid gets timeoutSeconds=0: it
    then ends right after its listing (the stream is checked as any answer) instead of
    lasting until the client leaves, which a fuzzer never does."""
    query = case.query or {}
    timeout = str(query.get("timeoutSeconds", "0"))
    if str(query.get("watch")) in ("1", "true") and timeout.isascii() and timeout.isdigit() \
            and int(timeout) <= MAX_TIMEOUT_SECONDS:
        query["timeoutSeconds"] = 0
    if case.meta is None or not case.meta.generation.mode.is_positive \
            or not isinstance(case.body, dict):
        return
    if "name" in case.body and "name" in (case.path_parameters or {}):
        case.body["name"] = case.path_parameters["name"]
    within_bounds(case.body)


def within_bounds(body):
    """A service's bounds agree with each other and its replicas (docs/scaling.md), a
    rule between numbers that JSON Schema can't state: a bound they break is dropped."""
    for bounds in (body, body.get("perCompute")):
        if isinstance(bounds, dict) and isinstance(bounds.get("minReplicas"), (int, float)) \
                and isinstance(bounds.get("maxReplicas"), (int, float)) \
                and bounds["minReplicas"] > bounds["maxReplicas"]:
            del bounds["minReplicas"]
    replicas = body.get("replicas")
    if not isinstance(replicas, (dict, int, float)) or isinstance(replicas, bool) \
            or not all(isinstance(n, (int, float)) for n in (
                replicas.values() if isinstance(replicas, dict) else [replicas])):
        return
    while True:
        per_compute = body.get("perCompute")
        found = breach(replicas, min_replicas=body.get("minReplicas"),
                       max_replicas=body.get("maxReplicas"),
                       per_compute=per_compute if isinstance(per_compute, dict) else None)
        if found is None:
            return
        if found.bound.startswith("perCompute."):
            del per_compute[found.bound.split(".")[1]]
        else:
            del body[found.bound]


@schema.parametrize()
# Reproducible (derandomize, no example database), and no time limit per request. Health
# checks are off: a slow or heavily filtered generation from a regex is not a finding.
@hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                     suppress_health_check=list(hypothesis.HealthCheck))
def test_every_answer_is_documented(case, live):
    SENT.append(case.operation.label)
    as_genisys_wants(case)
    # The token goes with the call, not in CONFIG: the ignored_auth check then knows it,
    # sends the request again without it and with a wrong one, and expects a 401.
    case.call_and_validate(base_url=live.url, headers=AUTH)


def test_every_check_is_on():
    """Schemathesis runs every check it has on each answer (as ``--checks all``)."""
    config = schema.config.checks_config_for(operation=None, phase=None)
    names = [check.__name__ for check in CHECKS.get_all()]
    assert len(names) >= 14 and "negative_data_rejection" in names
    assert [n for n in names if not config.get_by_name(name=n).enabled] == []
    if os.environ.get("GENISYS_FUZZ_COUNT"):
        print("\n%d cases sent" % len(SENT))
