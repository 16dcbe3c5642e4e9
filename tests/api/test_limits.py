"""Limits: how many computes and services, which connector hosts, and slow or huge
requests. Each refusal is a clear 4xx that changes nothing."""

import socket
import time

import pytest

from genisys.api import make_app
from genisys.intents import Intents
from tests.api.client import Api
from tests.support import wait_for


@pytest.fixture
def app(store):
    intents = Intents(store, max_replicas=1000, max_services=2, max_computes=2,
                      connector_hosts=("*.internal", "127.0.0.1"))
    return make_app(intents)


@pytest.fixture
def api(app, http_server, base_url):
    client = Api(base_url)
    yield client
    client.close()


async def state(api):
    return (await api.call("GET", "/compute"))[1], (await api.call("GET", "/service"))[1]


@pytest.mark.gen_test
async def test_max_computes(api):
    for name in ("a", "b"):
        code, body, _ = await api.call("POST", "/compute",
                                       {"name": name, "connector": "http://%s.internal" % name})
        assert code == 201, body
    before = await state(api)
    code, body, _ = await api.call("POST", "/compute", {"name": "c", "connector": "http://c.internal"})
    assert code == 409 and body["error"]["reason"] == "LimitExceeded"
    assert "2 computes, the maximum (max_computes)" in body["error"]["message"]
    code, body, _ = await api.call("PUT", "/compute/c", {"connector": "http://c.internal"})
    assert code == 409 and body["error"]["reason"] == "LimitExceeded"
    assert await state(api) == before
    code, _, _ = await api.call("PUT", "/compute/a", {"connector": "http://a2.internal"})
    assert code == 200  # replacing one is not adding one
    assert (await api.call("DELETE", "/compute/b"))[0] == 200
    code, _, _ = await api.call("PUT", "/compute/c", {"connector": "http://c.internal"})
    assert code == 201
    assert await state(api) == ({"a": {"name": "a", "connector": "http://a2.internal"},
                                 "c": {"name": "c", "connector": "http://c.internal"}}, {})


@pytest.mark.gen_test
async def test_max_services(api):
    await api.call("POST", "/compute", {"name": "a", "connector": "http://a.internal"})
    for name in ("one", "two"):
        code, body, _ = await api.call("POST", "/service/%s/upscale" % name, {"compute": "a"})
        assert code == 202, body
    before = await state(api)
    for method, path, body in (("POST", "/service/three/upscale", {"compute": "a"}),
                               ("POST", "/service/three/scale", {"compute": "a", "number": 1}),
                               ("PUT", "/service/three", {"replicas": {"a": 1}})):
        code, answer, _ = await api.call(method, path, body)
        assert code == 409 and answer["error"]["reason"] == "LimitExceeded", (path, answer)
        assert "max_services" in answer["error"]["message"]
    assert await state(api) == before
    code, _, _ = await api.call("POST", "/service/one/upscale", {"compute": "a"})
    assert code == 202  # existing services keep working
    computes, services = await state(api)
    assert {name: s["replicas"] for name, s in services.items()} == {"one": {"a": 2},
                                                                    "two": {"a": 1}}


@pytest.mark.gen_test
@pytest.mark.parametrize("url", ["http://evil.example.com", "http://169.254.169.254/latest",
                                 "http://internal", "http://a.internal.evil.com",
                                 "http://127.0.0.2:7051"])
async def test_only_allowed_connector_hosts(api, url):
    before = await state(api)
    for method, path, body in (("POST", "/compute", {"name": "x", "connector": url}),
                               ("PUT", "/compute/x", {"connector": url})):
        code, answer, _ = await api.call(method, path, body)
        assert code == 400 and answer["error"]["field"] == "connector", answer
        assert "not one of the allowed connector hosts" in answer["error"]["message"]
    assert await state(api) == before


@pytest.mark.gen_test
async def test_allowed_hosts_match_case_insensitively(api):
    for url, created in (("http://A.Internal:8080", 201), ("https://127.0.0.1:7051/prefix", 200)):
        code, body, _ = await api.call("PUT", "/compute/x", {"connector": url})
        assert (code, body) == (created, {"name": "x", "connector": url})
        assert await state(api) == ({"x": {"name": "x", "connector": url}}, {})


def test_a_slow_client_is_cut_off_while_others_are_served(start_genisys):
    genisys = start_genisys("--idle-timeout", "1s")
    slow = socket.create_connection(("127.0.0.1", genisys.port))
    slow.settimeout(0.1)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100

    def cut_off():
        try:
            slow.sendall(request[:1])  # one byte at a time, never finishing
        except OSError:
            return True
        try:
            return slow.recv(1024) == b""
        except socket.timeout:
            return False
        except OSError:
            return True
    started = time.monotonic()
    served = 0
    try:
        while not cut_off():
            assert genisys.request("GET", "/healthz").status_code == 200  # others are served
            served += 1
            assert time.monotonic() - started < 30, "the slow client was never cut off"
    finally:
        slow.close()
    assert served > 0


def raw_request(port, head):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(head)
        s.settimeout(10)
        answer = b""
        try:
            while chunk := s.recv(4096):  # until the server closes (Connection: close)
                answer += chunk
        except ConnectionResetError:
            pass
    return answer


def test_large_headers_get_a_431_and_huge_ones_are_cut_off(start_genisys):
    genisys = start_genisys()
    big = (b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: "
           + b"a" * 20 * 1024 + b"\r\n\r\n")
    answer = raw_request(genisys.port, big)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert b'"reason":"RequestHeaderFieldsTooLarge"' in answer and b'"field":"headers"' in answer
    huge = big.replace(b"a" * 20 * 1024, b"a" * 100 * 1024)
    assert raw_request(genisys.port, huge) == b""  # past the hard cap: closed, nothing read
    wait_for(lambda: genisys.request("GET", "/healthz").status_code == 200)
