"""Idempotency across a crash: retries of one keyed upscale, concurrent and after a
SIGKILL and restart of the controller, add exactly one."""

import concurrent.futures

import pytest


@pytest.mark.parametrize("crash", ["SIGKILL", "SIGTERM"])
def test_keyed_retries_add_exactly_one_across_a_restart(start_genisys, crash):
    genisys = start_genisys()
    r = genisys.request("POST", "/compute", json={"name": "local", "connector": "http://h:1"})
    assert r.status_code == 201

    def retry(_):
        r = genisys.request("POST", "/service/web/upscale", json={"compute": "local"},
                            headers={"Idempotency-Key": "deploy-42"})
        assert r.status_code == 202, r.text
        return r.json()["resourceVersion"], r.headers.get("Idempotent-Replayed")

    with concurrent.futures.ThreadPoolExecutor(25) as pool:
        first = list(pool.map(retry, range(50)))
    if crash == "SIGKILL":
        genisys.kill()
    else:
        assert genisys.stop() == 0
    genisys = start_genisys()  # the same store
    with concurrent.futures.ThreadPoolExecutor(25) as pool:
        second = list(pool.map(retry, range(50)))

    assert len({version for version, _ in first + second}) == 1
    assert [replayed for _, replayed in first + second].count(None) == 1
    assert genisys.request("GET", "/service/web").json()["replicas"] == {"local": 1}
