"""The bundled connector (the SDK's server) bounds what a caller can make it read: request
heads (a JSON 431 past 16 KiB, the connection closed past 64 KiB), bodies, and the
services of one batch request; each refusal names its limit and changes nothing."""

import socket

from genisys.connector import batch
from genisys.web import MAX_HEADER_BYTES, SERVER_MAX_HEADER_BYTES
from tests.connector.common import error_of, running, scale
from tests.support import wait_for


def raw_request(port, head):
    """What the connector answers ``head`` (bytes), read until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(head)
        s.settimeout(10)
        answer = b""
        try:
            while chunk := s.recv(4096):
                answer += chunk
        except ConnectionResetError:
            pass
    return answer


def head_with(size):
    return (b"GET /service/web/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: "
            + b"a" * size + b"\r\n\r\n")


def test_request_heads_are_bounded(start_connector):
    connector = start_connector(backend="simulated")
    assert (MAX_HEADER_BYTES, SERVER_MAX_HEADER_BYTES) == (16 * 1024, 64 * 1024)
    answer = raw_request(connector.port, head_with(20 * 1024))
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert b'"reason":"RequestHeaderFieldsTooLarge"' in answer
    assert b'"field":"headers"' in answer and b"the limit is 16384" in answer
    # Past the server's hard cap, the head is not even read: the connection is closed.
    assert raw_request(connector.port, head_with(100 * 1024)) == b""
    ok = raw_request(connector.port, head_with(1024))
    assert ok.startswith(b"HTTP/1.1 200") and b'{"running_resources":0}' in ok
    wait_for(lambda: connector.request("GET", "/healthz").status_code == 200)


def test_a_batch_over_max_services_is_refused_naming_the_limit(start_connector):
    connector = start_connector(backend="simulated")
    assert scale(connector, "web", 2).status_code == 200
    orders = {"s%d" % i: 1 for i in range(batch.MAX_SERVICES)}
    orders["web"] = 0
    r = connector.request("POST", "/batch/scale", json={"services": orders})
    error = error_of(r, 413)
    assert error == {"reason": "PayloadTooLarge", "field": "services",
                     "message": "1001 services in one request, the limit is 1000 (maxServices "
                                "of GET /capabilities)"}
    assert running(connector, "web") == 2  # nothing of it was applied
    r = connector.request("POST", "/batch/status", json={"services": list(orders)})
    assert error_of(r, 413)["message"].startswith("1001 services in one request, the limit")
