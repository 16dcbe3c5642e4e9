"""The batch extension from genisys' side, against real connector processes: calls
made together go out together, per-service errors read as they would one by one,
connectors without the extension (or that lose it) are called one by one, and a
resync of converged services costs batch requests only, no passes."""

import asyncio
import json
import re

import pytest

from genisys.connector.client import (
    ConnectorClient,
    ConnectorNotFound,
    ConnectorUnreachable,
)
from genisys.model import Compute
from tests.support import free_port, wait_for


def requests_by_endpoint(connector):
    """{endpoint: requests answered} from the connector's /metrics."""
    counts = {}
    for line in connector.request("GET", "/metrics").text.splitlines():
        match = re.match(r'genisys_connector_requests_total\{(.*)\} ([0-9.e+]+)$', line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            counts[labels["endpoint"]] = counts.get(labels["endpoint"], 0) + float(match.group(2))
    return counts


@pytest.fixture
def client(io_loop):
    c = ConnectorClient(connect_timeout=2, request_timeout=10, max_in_flight=4)
    yield c
    c.close()


def services_file(tmp_path):
    path = tmp_path / "services.json"
    path.write_text(json.dumps([{"name": "web", "command": ["sleep", "3600"]}]))
    return str(path)


@pytest.mark.gen_test(timeout=60)
async def test_calls_made_together_go_out_together(start_connector, client):
    connector = start_connector(backend="simulated")
    compute = Compute("sim", connector.url)
    names = ["s%03d" % i for i in range(300)]
    assert await asyncio.gather(*(client.running(compute, n) for n in names)) == [0] * 300
    assert await asyncio.gather(*(client.scale(compute, n, 2) for n in names[:120])) \
        == [2] * 120
    assert await client.running_many(compute, names[:150]) == {
        n: 2 if i < 120 else 0 for i, n in enumerate(names[:150])}
    counts = requests_by_endpoint(connector)
    assert counts.get("status", 0) == 0 and counts.get("scale", 0) == 0
    assert counts["capabilities"] == 1
    assert 2 <= counts["batch_status"] <= 6  # 300 + 150 names, 500 at most per request
    assert 1 <= counts["batch_scale"] <= 3


@pytest.mark.gen_test(timeout=60)
async def test_a_batch_due_after_the_client_closed_is_not_sent(start_connector, client):
    connector = start_connector(backend="simulated")
    compute = Compute("sim", connector.url)
    assert await client.running(compute, "s0") == 0  # the batch size is known now
    waiting = asyncio.ensure_future(client.scale(compute, "s1", 1))
    while not client._batches:  # in the batch window, which ends after the close
        await asyncio.sleep(0)
    await client.aclose()
    with pytest.raises(ConnectorUnreachable) as caught:
        await waiting
    assert "not sent: this connector client is closed" in caught.value.message
    assert client._http is None  # no session opened after the close, left unclosed
    assert requests_by_endpoint(connector).get("batch_scale", 0) == 0


@pytest.mark.gen_test(timeout=60)
async def test_a_failing_service_fails_alone_and_reads_as_it_would_one_by_one(
        start_connector, client, tmp_path):
    batch = start_connector("--services", services_file(tmp_path), name="batch")
    single = start_connector("--services", services_file(tmp_path), "--no-batch",
                             name="single")
    errors = {}
    for connector in (batch, single):
        compute = Compute("c", connector.url)
        assert await client.scale(compute, "web", 1) == 1
        results = await asyncio.gather(client.running(compute, "web"),
                                       client.running(compute, "ghost"),
                                       client.scale(compute, "ghost", 1),
                                       return_exceptions=True)
        assert results[0] == 1
        assert all(isinstance(r, ConnectorNotFound) for r in results[1:]), results
        errors[connector] = [str(r).replace(connector.url, "URL") for r in results[1:]]
        await client.scale(compute, "web", 0)
    assert errors[batch] == errors[single]
    assert errors[batch][0].startswith("GET URL/service/ghost/status: 404, the connector has "
                                       "no such service")
    assert requests_by_endpoint(batch).get("status", 0) == 0
    assert "batch_status" not in requests_by_endpoint(single)


@pytest.mark.gen_test(timeout=60)
async def test_a_connector_that_loses_the_extension_is_called_one_by_one(
        start_connector, client):
    port = free_port()
    first = start_connector("--port", str(port), backend="simulated", name="first")
    compute = Compute("sim", first.url)
    assert await client.running(compute, "web") == 0  # learns: batch
    first.stop()
    second = start_connector("--port", str(port), "--no-batch", backend="simulated",
                             name="second")
    assert await asyncio.gather(*(client.scale(compute, "s%d" % i, 1) for i in range(5))) \
        == [1] * 5
    assert await client.running_many(compute, ["s0"]) is None  # now known: no extension
    counts = requests_by_endpoint(second)
    assert counts["scale"] == 5 and counts.get("batch_scale", 0) == 0


@pytest.mark.gen_test(timeout=30)
async def test_an_unreachable_connector_is_unreachable_either_way(client):
    compute = Compute("gone", "http://127.0.0.1:%d" % free_port())
    with pytest.raises(ConnectorUnreachable):
        await client.running(compute, "web")
    assert await client.running_many(compute, ["web"]) is None


def passes(genisys):
    text = genisys.request("GET", "/metrics").text
    return sum(float(v) for v in re.findall(
        r'^genisys_reconcile_passes_total\{[^}]*\} ([0-9.e+]+)$', text, re.M))


def test_a_resync_of_converged_services_asks_in_batches_and_passes_nothing(
        start_genisys, start_connector):
    connector = start_connector(backend="simulated")
    genisys = start_genisys("--poll-interval", "300ms")
    assert genisys.request("PUT", "/compute/sim", json={"connector": connector.url}) \
        .status_code == 201
    for i in range(40):
        r = genisys.request("PUT", "/service/s%02d" % i, json={"replicas": {"sim": 2}})
        assert r.status_code == 201

    def converged():
        services = genisys.request("GET", "/service").json()
        return len(services) == 40 and all(
            s["status"]["computes"].get("sim", {}).get("condition") == "Converged"
            for s in services.values())
    wait_for(converged, timeout=30, message="40 services converged")
    before, asked = passes(genisys), requests_by_endpoint(connector)
    wait_for(lambda: requests_by_endpoint(connector).get("batch_status", 0)
             >= asked.get("batch_status", 0) + 3, timeout=30, message="three resyncs")
    assert passes(genisys) == before
    assert requests_by_endpoint(connector).get("status", 0) == 0
    # Drift the connector's count behind genisys' back: the next resync sees it, and a
    # pass puts it right.
    r = connector.request("POST", "/service/s07/scale", json={"number": 0})
    assert r.status_code == 200
    # The connector counts 2 as soon as it takes the pass's order, and genisys counts the
    # pass once the answer is back: both are waited for, not one then a read of the other.
    wait_for(lambda: connector.request("GET", "/service/s07/status").json()
             == {"running_resources": 2} and passes(genisys) > before, timeout=30,
             message="s07 back at 2, by a pass")
