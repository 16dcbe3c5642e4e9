"""The simulated backend through real connectors: virtual resources, injected start
delay, failures and latency; and /metrics, which every connector serves."""

import asyncio
import random
import time

import pytest

from genisys.connector.simulated import SimulatedBackend
from genisys.errors import SimulatedFailure
from tests.connector.common import error_of, running, scale
from tests.support import wait_for


def test_any_valid_name_runs_without_a_definition(start_connector):
    connector = start_connector(backend="simulated")
    assert running(connector, "anything") == 0
    assert scale(connector, "anything", 5).json() == {"running_resources": 5, "number": 5}
    assert running(connector, "anything") == 5
    assert scale(connector, "anything", 2).json()["running_resources"] == 2  # at once
    assert running(connector, "anything") == 2
    assert error_of(scale(connector, "not_valid", 1), 400)["field"] == "name"
    assert "backend simulated" in connector.log()


def test_start_delay_counts_new_resources_only_once_started(start_connector):
    connector = start_connector("--start-delay", "1500ms", backend="simulated")
    # The order is taken at once; none of the three runs yet (the answer says so).
    assert scale(connector, "web", 3).json() == {"running_resources": 0, "number": 3}
    wait_for(lambda: running(connector, "web") == 3, message="the delayed start")
    # The answer counts what runs when the order is taken: the two new ones start
    # 1.5 s after it, the answer is computed in the same step as their start times.
    assert scale(connector, "web", 5).json() == {"running_resources": 3, "number": 5}
    wait_for(lambda: running(connector, "web") == 5, message="the two delayed starts")
    assert scale(connector, "web", 3).json()["running_resources"] == 3
    assert scale(connector, "web", 1).json()["running_resources"] == 1


def test_failure_rate_one_fails_every_protocol_call(start_connector):
    connector = start_connector("--failure-rate", "1", backend="simulated")
    for r in (connector.request("GET", "/service/web/status"), scale(connector, "web", 1)):
        error = error_of(r, 500)
        assert error["reason"] == "SimulatedFailure" and "web" in error["message"]
    assert "Traceback" not in connector.log()
    # Only the protocol calls fail: definitions and health still answer.
    assert connector.request("PUT", "/service/web", json={"command": "x"}).status_code == 201
    assert connector.request("GET", "/healthz").status_code == 200


def test_latency_is_added_to_status_and_scale(start_connector):
    connector = start_connector("--latency", "300ms", backend="simulated")
    for call in (lambda: running(connector, "web"), lambda: scale(connector, "web", 1)):
        started = time.monotonic()
        call()
        assert time.monotonic() - started >= 0.3


def test_failures_follow_the_seeded_random_generator():
    async def outcomes(seed):
        backend = SimulatedBackend(failure_rate=0.5, rng=random.Random(seed))
        results = []
        for _ in range(40):
            try:
                await backend.count("web")
                results.append("ok")
            except SimulatedFailure:
                results.append("failed")
        return results
    first, second = asyncio.run(outcomes(7)), asyncio.run(outcomes(7))
    assert first == second
    assert 5 < first.count("failed") < 35


def test_start_delay_with_a_clock_in_process():
    now = [100.0]
    backend = SimulatedBackend(start_delay=10, clock=lambda: now[0])

    async def scenario():
        assert await backend.scale("web", 2) == 0
        now[0] += 9.9
        assert await backend.count("web") == 0
        now[0] += 0.1
        assert await backend.count("web") == 2
        assert backend.snapshot() == {"web": 2}
        # Scaling down drops the newest: those still starting go before running ones.
        assert await backend.scale("web", 4) == 2
        now[0] += 5
        assert await backend.scale("web", 3) == 2
        assert backend.snapshot() == {"web": 2}
        now[0] += 5
        assert backend.snapshot() == {"web": 3}
        assert await backend.scale("web", 1) == 1
        await backend.scale("web", 0)
        assert backend.snapshot() == {}
    asyncio.run(scenario())


# -- /metrics ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["simulated", "process"])
def test_metrics_in_prometheus_text(start_connector, backend):
    connector = start_connector(backend=backend)
    connector.request("PUT", "/service/web", json={"command": "sleep 600"})
    assert scale(connector, "web", 2).status_code == 200
    running(connector, "web")
    connector.request("GET", "/service/nope/status")
    r = connector.request("GET", "/metrics")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    text = r.text
    # The simulated backend needs no definition: its "nope" is a 200 too.
    statuses = {"simulated": [("200", 2)], "process": [("200", 1), ("404", 1)]}[backend]
    for line in [
        'genisys_connector_requests_total{code="200",endpoint="scale",method="POST"} 1.0',
        'genisys_connector_scale_seconds_count{outcome="ok"} 1.0',
        'genisys_connector_resources{service="web"} 2.0',
    ] + ['genisys_connector_requests_total{code="%s",endpoint="status",method="GET"} %d.0'
         % status for status in statuses]:
        assert line in text, text
    assert "# TYPE genisys_connector_scale_seconds histogram" in text
    scale(connector, "web", 0)
    text = connector.request("GET", "/metrics").text
    assert 'genisys_connector_resources{service="web"} 2.0' not in text
