"""A connector that requires a token, and genisys holding it for the compute: the token
reaches the connector and nowhere else (no API answer, no log)."""

import json

import requests

from tests.cli.test_serve import one_line_error
from tests.support import run_client_command, run_genisys, wait_for

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


def test_cli_output_never_shows_a_compute_token(start_genisys, start_connector, tmp_path):
    """The token comes from the environment of `genisys apply` (tokenFromEnv), reaches
    the connector, and no CLI output shows it."""
    connector = start_connector(backend="simulated", env={"GENISYS_CONNECTOR_TOKEN": SECRET})
    genisys = start_genisys("--backoff-initial", "100ms", "--backoff-max", "500ms")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "all.yaml").write_text(
        "apiVersion: genisys/v1\nkind: Compute\nmetadata: {name: good}\n"
        "spec: {connector: '%s', tokenFromEnv: GOOD_TOKEN}\n---\n"
        "apiVersion: genisys/v1\nkind: Service\nmetadata: {name: web}\n"
        "spec: {replicas: {good: 2}}\n" % connector.url)

    def cli(*args, expect=0):
        # In this process (tests.support.run_client_command): the same streams; the
        # refused apply below runs as a real process.
        done = run_client_command(list(args) + ["--server", genisys.url], cwd=str(tmp_path),
                                  env={"GOOD_TOKEN": SECRET})
        assert done.returncode == expect, done.stderr
        return done.stdout + done.stderr

    outputs = [cli("apply", "-f", "m")]
    wait_for(lambda: entry(genisys, "web", "good").get("condition") == "Converged",
             message="web converged with the token from the environment")
    outputs += [cli("apply", "-f", "m"), cli("diff", "-f", "m"),
                cli("get", "computes"), cli("get", "computes", "-o", "json"),
                cli("get", "compute", "good", "-o", "yaml"), cli("describe", "compute", "good"),
                cli("get", "services", "-o", "yaml"), cli("describe", "service", "web")]
    assert "unchanged" in outputs[1] and "status:\n  token: set" in outputs[5]
    # Without the variable, apply refuses (naming it), and changes nothing.
    done = run_genisys(["apply", "-f", "m", "--server", genisys.url], cwd=str(tmp_path))
    assert done.returncode == 2
    assert "spec.tokenFromEnv: the environment variable GOOD_TOKEN is not set" in done.stderr
    outputs.append(done.stdout + done.stderr)
    genisys.stop()
    for text in outputs + [genisys.log()]:
        assert SECRET not in text
