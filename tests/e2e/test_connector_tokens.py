"""A connector that requires a token, and genisys holding it for the compute: the token
reaches the connector and nowhere else (no API answer, no log)."""

import json

import requests

from tests.cli.test_serve import one_line_error
from tests.support import run_genisys, wait_for

SECRET = "connector-secret-0123456789"


def entry(genisys, service, compute):
    return genisys.request("GET", "/service/" + service).json()["status"]["computes"].get(
        compute) or {}


def test_the_token_reaches_the_connector_and_nowhere_else(start_genisys, start_connector):
    connector = start_connector(backend="simulated", env={"GENISYS_CONNECTOR_TOKEN": SECRET})
    assert requests.get(connector.url + "/healthz", timeout=10).status_code == 200
    r = requests.get(connector.url + "/service/web/status", timeout=10)
    assert r.status_code == 401 and r.json()["error"]["reason"] == "Unauthorized"

    genisys = start_genisys("--backoff-initial", "100ms", "--backoff-max", "500ms")
    answers = []
    for name, token in (("good", SECRET), ("none", None), ("wrong", "another-secret-9876")):
        body = {"name": name, "connector": connector.url}
        if token:
            body["token"] = token
        answers.append(genisys.request("POST", "/compute", json=body))
        assert answers[-1].status_code == 201
        answers.append(genisys.request("POST", "/service/web/scale",
                                       json={"compute": name, "number": 2}))

    wait_for(lambda: entry(genisys, "web", "good").get("condition") == "Converged",
             message="web converged on good")
    for name, words in (("none", "without a token"), ("wrong", "the compute's token")):
        failed = wait_for(lambda n=name: entry(genisys, "web", n).get("failures")
                          and entry(genisys, "web", n), message="web failing on " + name)
        assert failed["condition"] == "Error" and failed["reason"] == "ConnectorUnauthorized"
        assert words in failed["message"]
    assert connector.request("GET", "/service/web/status", headers={
        "Authorization": "Bearer " + SECRET}).json() == {"running_resources": 2}

    for path in ("/compute", "/compute/good", "/service/web", "/service/web/events", "/audit",
                 "/metrics"):
        answers.append(genisys.request("GET", path))
    genisys.stop()
    connector.stop()
    assert answers[0].json()["token"] == "set"
    seen = json.dumps([[r.text, dict(r.headers)] for r in answers])
    for text in (seen, genisys.log(), connector.log()):
        assert SECRET not in text and "another-secret-9876" not in text


def test_a_connector_beyond_loopback_needs_a_token(tmp_path):
    result = run_genisys(["connector", "--backend", "simulated", "--bind", "0.0.0.0",
                          "--port", "0"], cwd=str(tmp_path))
    assert result.returncode == 2
    assert "--bind: refusing to listen on 0.0.0.0 without a token" in one_line_error(result)
    result = run_genisys(["connector", "--backend", "simulated", "--port", "0"], cwd=str(tmp_path),
                         env={"GENISYS_CONNECTOR_TOKEN": "short"})
    assert result.returncode == 2
    assert "GENISYS_CONNECTOR_TOKEN[0].token: must be at least 16" in one_line_error(result)


def test_insecure_bind_any_is_warned_about(start_connector):
    connector = start_connector("--bind", "0.0.0.0", "--insecure-bind-any", backend="simulated")
    connector.stop()
    assert "INSECURE: listening on 0.0.0.0 without a token" in connector.log()
