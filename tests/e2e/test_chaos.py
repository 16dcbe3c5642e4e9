"""Chaos: a simulated connector that is slow, slow to start resources and fails
half of its calls. genisys still converges every service to exactly what is
wanted, and the failures show only where they happen."""

import random

from tests.support import wait_for


def test_a_flaky_connector_still_converges_exactly(start_genisys, start_connector):
    flaky = start_connector("--latency", "20ms", "--failure-rate", "0.5",
                            "--start-delay", "300ms", backend="simulated")
    steady = start_connector(backend="simulated")
    genisys = start_genisys("--poll-interval", "1s", "--backoff-initial", "50ms",
                            "--backoff-max", "500ms")
    for name, connector in (("flaky", flaky), ("steady", steady)):
        r = genisys.request("PUT", "/compute/" + name, json={"connector": connector.url})
        assert r.status_code == 201, r.text

    rng = random.Random(3)
    wanted = {"svc%d" % i: {"flaky": rng.randint(0, 6), "steady": rng.randint(0, 6)}
              for i in range(12)}
    for name, replicas in wanted.items():
        r = genisys.request("PUT", "/service/" + name, json={"replicas": replicas})
        assert r.status_code == 201, r.text
    # Change some intents while the first orders are still failing.
    for name in list(wanted)[:4]:
        wanted[name]["flaky"] = rng.randint(0, 6)
        r = genisys.request("PUT", "/service/" + name, json={"replicas": wanted[name]})
        assert r.status_code == 200, r.text

    def converged():
        services = genisys.request("GET", "/service").json()
        return all(
            services[name]["status"]["computes"].get(compute, {}).get("condition")
            == "Converged" and services[name]["status"]["computes"][compute]["running"] == n
            for name, replicas in wanted.items() for compute, n in replicas.items())
    wait_for(converged, timeout=60, interval=0.2, message="every service converged")

    # What the connectors themselves say (the flaky one may need a few tries).
    def reported(connector, name):
        r = connector.request("GET", "/service/%s/status" % name)
        return r.status_code == 200 and r.json()
    for name, replicas in wanted.items():
        for compute, connector in (("flaky", flaky), ("steady", steady)):
            answer = wait_for(lambda c=connector, n=name: reported(c, n),
                              message="a status answer")
            assert answer == {"running_resources": replicas[compute]}

    failures = [e for name in wanted
                for e in genisys.request("GET", "/service/%s/events" % name).json()
                if e["type"] == "Warning"]
    assert failures and all(e["compute"] == "flaky" for e in failures)
    assert {e["reason"] for e in failures} <= {"ConnectorError"}
