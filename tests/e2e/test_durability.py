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


class UpscaleStream:
    """Threads that send upscales until the server goes away or stop() is called.

    ``keep_alive``: each thread reuses one connection (requests.Session, as browsers
    do); otherwise every upscale opens a fresh one. ``cut_off`` counts the upscales
    that got no answer at all (the connection closed or was refused)."""

    def __init__(self, url, *, threads=8, keep_alive=True):
        self.url = url
        self.keep_alive = keep_alive
        self.sent = self.acked = self.cut_off = 0
        self.refused = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self):
        session = requests.Session() if self.keep_alive else requests
        while not self._stop.is_set():
            with self._lock:
                self.sent += 1
            try:
                r = session.post(self.url + "/service/web/upscale", json=UPSCALE, timeout=10)
            except requests.RequestException:
                with self._lock:
                    self.cut_off += 1
                return  # the server is gone
            with self._lock:
                if r.status_code == 202:
                    self.acked += 1
                else:
                    self.refused.append(r.text)

    def wait_acked(self, count):
        wait_for(lambda: self.acked >= count, timeout=60,
                 message="%d acknowledged upscales" % count)

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(30)


def test_sigkill_in_the_middle_of_a_stream_loses_no_acknowledged_write(start_genisys):
    server = start_genisys()
    seed(server)
    stream = UpscaleStream(server.url)
    stream.wait_acked(300)
    server.stop(signal.SIGKILL)
    stream.stop()
    assert stream.refused == []  # every answer before the kill was a 202
    stored = desired(start_genisys())
    assert stream.acked <= stored <= stream.sent, (stream.acked, stored, stream.sent)


def applied_upscales(server):
    """The upscales genisys applied, by its audit trail: every one answered 202 is
    stored, whether or not its answer reached the client."""
    r = server.request("GET", "/audit?limit=1000")
    assert r.status_code == 200, r.text
    return sum(1 for e in r.json()
               if (e["method"], e["path"], e["status"]) == ("POST", "/service/web/upscale", 202))


@pytest.mark.parametrize("keep_alive", [True, False], ids=["keep-alive", "fresh-connections"])
def test_sigterm_answers_every_upscale_it_applies(start_genisys, keep_alive):
    """8 clients upscale while genisys gets SIGTERM, three times over. Every upscale
    genisys applied got its 202; every other one was refused before anything of it
    was handled (the client saw a closed or refused connection, and it is not stored)."""
    server = start_genisys()
    seed(server)
    acked = 0
    for _ in range(3):
        stream = UpscaleStream(server.url, keep_alive=keep_alive)
        stream.wait_acked(100)
        assert server.stop(signal.SIGTERM) == 0
        stream.stop()
        assert stream.refused == []
        assert stream.cut_off == 8  # each thread stops at its first unanswered upscale
        log = server.log()
        assert "shutting down" in log and "stopped" in log
        assert "Traceback" not in log and "did not finish" not in log
        with pytest.raises(requests.ConnectionError):
            requests.get(server.url + "/healthz", timeout=5)
        acked += stream.acked
        server = start_genisys()
        assert (desired(server), applied_upscales(server)) == (acked, acked)


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
