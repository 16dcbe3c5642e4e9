"""Acknowledged means durable: real genisys processes, SIGKILLed and restarted."""

import concurrent.futures
import signal
import threading

import pytest
import requests

from tests.support import wait_for

UPSCALE = {"compute": "local"}


def seed(server):
    r = server.request("POST", "/compute", json={"name": "local",
                                                 "connector": "http://127.0.0.1:7051"})
    assert r.status_code == 201, r.text


def desired(server, service="web"):
    r = server.request("GET", "/service/" + service)
    assert r.status_code == 200, r.text
    return r.json()["replicas"]["local"]


def upscale_many(url, count, workers=16):
    """Send ``count`` upscales from ``workers`` threads; returns how many got a 202."""
    local = threading.local()

    def one(_):
        if not hasattr(local, "session"):
            local.session = requests.Session()
        r = local.session.post(url + "/service/web/upscale", json=UPSCALE, timeout=30)
        assert r.status_code == 202, r.text
        return 1
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return sum(pool.map(one, range(count)))


def test_every_acknowledged_upscale_survives_sigkill(start_genisys):
    server = start_genisys()
    seed(server)
    assert upscale_many(server.url, 500) == 500
    server.stop(signal.SIGKILL)
    restarted = start_genisys()
    assert desired(restarted) == 500


def test_sigkill_in_the_middle_of_a_stream_loses_no_acknowledged_write(start_genisys):
    server = start_genisys()
    seed(server)
    acked, sent = [0], [0]
    lock = threading.Lock()
    stop = threading.Event()

    def stream():
        session = requests.Session()
        while not stop.is_set():
            with lock:
                sent[0] += 1
            try:
                r = session.post(server.url + "/service/web/upscale", json=UPSCALE, timeout=10)
            except requests.RequestException:
                return  # the server is gone
            if r.status_code == 202:
                with lock:
                    acked[0] += 1
    threads = [threading.Thread(target=stream) for _ in range(8)]
    for t in threads:
        t.start()
    wait_for(lambda: acked[0] >= 300, timeout=60, message="300 acknowledged upscales")
    server.stop(signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join(30)
    restarted = start_genisys()
    stored = desired(restarted)
    assert acked[0] <= stored <= sent[0], (acked[0], stored, sent[0])


def test_sigterm_finishes_in_flight_requests_and_exits_cleanly(start_genisys):
    server = start_genisys()
    seed(server)
    acked = [0]
    lock = threading.Lock()
    errors = []

    def stream():
        session = requests.Session()
        while True:
            try:
                r = session.post(server.url + "/service/web/upscale", json=UPSCALE, timeout=10)
            except requests.RequestException:
                return
            if r.status_code != 202:
                errors.append(r.text)
                return
            with lock:
                acked[0] += 1
    threads = [threading.Thread(target=stream) for _ in range(8)]
    for t in threads:
        t.start()
    wait_for(lambda: acked[0] >= 100, timeout=60, message="100 acknowledged upscales")
    assert server.stop(signal.SIGTERM) == 0
    for t in threads:
        t.join(30)
    assert not errors, errors
    log = server.log()
    assert "shutting down" in log and "stopped" in log
    assert "Traceback" not in log
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/healthz", timeout=5)
    restarted = start_genisys()
    # Every answered request is stored; one cut off mid-answer may be stored too.
    assert acked[0] <= desired(restarted) <= acked[0] + 8


def test_sigint_stops_it_too(start_genisys):
    server = start_genisys()
    assert server.stop(signal.SIGINT) == 0
    assert "stopped" in server.log()


def test_second_genisys_on_the_same_sqlite_file_refuses_to_start(start_genisys, tmp_path):
    from tests.support import run_genisys
    first = start_genisys()
    result = run_genisys(["--port", "0", "--store", "sqlite:///%s/genisys.db" % tmp_path],
                         cwd=str(tmp_path))
    assert result.returncode == 1
    assert "in use by pid %d" % first.proc.pid in result.stderr
    assert "Traceback" not in result.stderr
    assert first.request("GET", "/readyz").status_code == 200
