"""A connector that answers 503 with Retry-After (the aws connector when AWS throttles it):
a real genisys waits at least that long before it calls again, per-service and batch, and
shows the pair ConnectorThrottled meanwhile (answering, so not Unreachable)."""

import json
import time

import pytest
import tornado.web

from tests.support import wait_for
from tests.threaded import ThreadedServer

#: Backoff far below the Retry-After: a call sooner than it is genisys' backoff, not the
#: connector's word.
FAST = ["--poll-interval", "500ms", "--backoff-initial", "100ms", "--backoff-max", "500ms",
        "--connector-timeout", "5s", "--connector-connect-timeout", "1s"]
RETRY_AFTER = 2


class ThrottlingConnector:
    """A connector that throttles its first ``throttled`` calls of web (Retry-After), then
    runs what it is told; ``batch``: offers the batch extension. ``calls``: the monotonic
    times of web's calls."""

    def __init__(self, *, throttled, batch):
        self.throttled = throttled
        self.batch = batch
        self.calls = []
        self.running = 0
        self._server = None

    def answer(self, number=None):
        """(status, headers, entry) of one call of web."""
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.throttled:
            error = {"reason": "Throttled", "message": "AWS is throttling the connector"}
            return 503, {"Retry-After": str(RETRY_AFTER)}, error
        if number is not None:
            self.running = number
        return 200, {}, {"running_resources": self.running}

    def start(self):
        connector = self

        class Handler(tornado.web.RequestHandler):
            def check_xsrf_cookie(self):
                return None

            def reply(self, status, body, headers=()):
                self.set_status(status)
                for key, value in dict(headers).items():
                    self.set_header(key, value)
                self.finish(json.dumps(body))

            def get(self, path):
                if path == "capabilities" and connector.batch:
                    return self.reply(200, {"batch": {"maxServices": 100}})
                if path == "service/web/status":
                    status, headers, entry = connector.answer()
                    return self.reply(status, entry if status == 200 else {"error": entry},
                                      headers)
                self.reply(404, {"error": {"reason": "NotFound", "message": path}})

            def post(self, path):
                body = json.loads(self.request.body or b"{}")
                if path == "service/web/scale":
                    status, headers, entry = connector.answer(body["number"])
                    return self.reply(status, entry if status == 200 else {"error": entry},
                                      headers)
                if path in ("batch/status", "batch/scale") and connector.batch:
                    number = body["services"]["web"] if path == "batch/scale" else None
                    status, headers, entry = connector.answer(number)
                    if status != 200:
                        entry = {"error": dict(entry, status=status, retryAfter=RETRY_AFTER)}
                    return self.reply(200, {"services": {"web": entry}})
                self.reply(404, {"error": {"reason": "NotFound", "message": path}})

        self._server = ThreadedServer(
            lambda: tornado.web.Application([(r"/(.*)", Handler)]),
            name="throttling-connector").start()
        self.url = self._server.url
        return self

    def stop(self):
        self._server.stop()


@pytest.mark.parametrize("batch", [False, True], ids=["per-service", "batch"])
def test_genisys_waits_the_retry_after_of_a_throttled_connector(start_genisys, batch):
    connector = ThrottlingConnector(throttled=2, batch=batch).start()
    try:
        genisys = start_genisys(*FAST)
        r = genisys.request("PUT", "/compute/aws", json={"connector": connector.url})
        assert r.status_code == 201, r.text
        r = genisys.request("POST", "/service/web/scale", json={"compute": "aws", "number": 2})
        assert r.status_code == 202, r.text

        def entry():
            return genisys.request("GET", "/service/web").json()["status"]["computes"].get(
                "aws", {})
        throttled = wait_for(lambda: entry().get("reason") == "ConnectorThrottled" and entry(),
                             timeout=20, message="web shown throttled")
        assert throttled["condition"] == "Error", throttled
        assert "the connector asks to wait %ds" % RETRY_AFTER in throttled["message"], throttled
        wait_for(lambda: entry().get("condition") == "Converged" and entry()["running"] == 2,
                 timeout=30, message="web converged at 2 (%s)" % entry())
        # Each throttled call was followed by a wait of at least its Retry-After (the
        # backoff alone would have called again within half a second).
        first, second, third = connector.calls[:3]
        assert second - first >= RETRY_AFTER - 0.05, connector.calls
        assert third - second >= RETRY_AFTER - 0.05, connector.calls
    finally:
        connector.stop()
