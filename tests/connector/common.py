"""Helpers of the connector tests: commands to run, and the calls a controller makes."""

import sys

#: A resource that runs until it is stopped.
SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]

#: A resource that ignores SIGTERM (says "ready" once it does): only SIGKILL stops it.
IGNORES_SIGTERM = [sys.executable, "-c",
                   "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                   "print('ready', flush=True); time.sleep(600)"]


def define(connector, name, command, **fields):
    r = connector.request("PUT", "/service/%s" % name, json=dict(fields, command=command))
    assert r.status_code in (200, 201), r.text
    return r.json()


def scale(connector, name, number):
    """POST /service/<name>/scale; the response (checked by the caller)."""
    return connector.request("POST", "/service/%s/scale" % name, json={"number": number})


def running(connector, name):
    r = connector.request("GET", "/service/%s/status" % name)
    assert r.status_code == 200, r.text
    return r.json()["running_resources"]


def error_of(response, status):
    """The error object of a JSON error answer, checked for shape and status."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) <= {"reason", "message", "field"}, body
    assert body["error"]["message"], body
    return body["error"]


def output_of(entry):
    """What a process (a state file entry) wrote to its log so far."""
    with open(entry["log"], encoding="utf-8", errors="replace") as f:
        return f.read()
