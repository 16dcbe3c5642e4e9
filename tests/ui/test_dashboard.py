"""The dashboard (/ui) in a real headless Chromium, against a real genisys and a real
process connector: what the page shows follows what really runs, live; a read-only
token cannot change anything from it; markup in messages stays text. The end-to-end
test also takes the screenshots the docs show (docs/images/ui-*.png, 1280x800)."""

import http.server
import json
import os
import signal
import sys
import threading
import uuid

import pytest

from genisys.connector.client import MAX_BATCH
from tests.e2e.lab import processes
from tests.support import ROOT, wait_for

IMAGES = os.path.join(ROOT, "docs", "images")
ADMIN_TOKEN = "ui-admin-token-0123456789abcdef"
READER_TOKEN = "ui-reader-token-0123456789abcdef"
#: Markup a connector puts in its error message: it must show as these characters.
HOSTILE = ('<script>document.title="pwned"</script>'
           '<img src=x onerror="document.title=\'pwned\'">')

#: What a cell of the overview shows: the text of one field of one service's compute row.
CELL = ('var row = document.querySelector(\'tr[data-service="\' + arguments[0] + \'"]'
        '[data-compute="\' + arguments[1] + \'"]\'); '
        'var cell = row && row.querySelector(\'[data-field="\' + arguments[2] + \'"]\'); '
        'return cell ? cell.textContent : null;')

#: Records every text the running cell of web on local shows, as the page changes it.
RECORD_RUNNING = """
window.seenRunning = [];
var read = function () {
  var cell = document.querySelector('tr[data-service="web"][data-compute="local"] '
                                    + '[data-field="running"]');
  var text = cell ? cell.textContent : null;
  if (text !== null && window.seenRunning[window.seenRunning.length - 1] !== text) {
    window.seenRunning.push(text);
  }
};
read();
new MutationObserver(read).observe(document.body,
                                   {subtree: true, childList: true, characterData: true});
"""


#: How many times web's timeline says it was scaled from 0 to 1 (an event's count
#: included: "×2").
SCALED_FROM_0_TO_1 = """
var times = 0;
for (var item of document.querySelectorAll('#events li')) {
  if (item.querySelector('.message').textContent !== 'scaled web on local from 0 to 1') continue;
  var count = /×(\\d+)/.exec(item.textContent);
  times += count ? Number(count[1]) : 1;
}
return times;
"""


def scaled_from_0_to_1(browser):
    return browser.execute_script(SCALED_FROM_0_TO_1)


def cell(browser, service, compute, field):
    return browser.execute_script(CELL, service, compute, field)


def wait_in_page(browser, condition, *, timeout=20, message="the page"):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(browser, timeout, poll_frequency=0.05).until(
        lambda _: condition(), message="timed out waiting for " + message)


def button(browser, service, compute, action):
    from selenium.webdriver.common.by import By
    return browser.find_element(
        By.CSS_SELECTOR, 'tr[data-service="%s"][data-compute="%s"] [data-action="%s"]'
        % (service, compute, action))


def click(browser, service, compute, action):
    """Click a row's button as the page shows it now. A row the page built again between
    the find and the click leaves a stale element, which WebDriver refuses before it
    clicks anything: the button is found again."""
    from selenium.common.exceptions import StaleElementReferenceException

    def clicked():
        try:
            button(browser, service, compute, action).click()
        except StaleElementReferenceException:
            return False
        return True
    wait_in_page(browser, clicked, message="%s of %s on %s clicked" % (action, service, compute))


def enter_token(browser, token):
    from selenium.webdriver.common.by import By
    browser.find_element(By.ID, "token-input").send_keys(token)
    browser.find_element(By.ID, "token-save").click()


def screenshot(browser, name):
    os.makedirs(IMAGES, exist_ok=True)
    path = os.path.join(IMAGES, name)
    assert browser.get_screenshot_as_file(path)
    return path


def severe_console_errors(browser):
    return [entry["message"] for entry in browser.get_log("browser")
            if entry["level"] == "SEVERE" and "favicon" not in entry["message"]]


@pytest.fixture
def two_services(lab):
    """The lab's connector runs web and api (api's processes carry their own marker)."""
    lab.api_marker = "genisys-test-api-%s" % uuid.uuid4().hex[:12]
    lab.services_file.write_text(json.dumps([
        {"name": name, "command": [sys.executable, "-c", "import time; time.sleep(3600)",
                                   marker]}
        for name, marker in (("web", lab.marker), ("api", lab.api_marker))]))
    return lab


def test_plus_starts_a_process_and_the_page_follows_it_live(two_services, browser):
    lab = two_services
    lab.start_the_connector()
    genisys = lab.start()
    lab.scale(0)  # web exists, with nothing on local
    r = genisys.request("PUT", "/service/api", json={"replicas": 2,
                                                     "placement": {"computes": ["local"]}})
    assert r.status_code == 201, r.text
    wait_for(lambda: len(processes(lab.api_marker)) == 2, timeout=30, message="api's 2")

    browser.get(genisys.url + "/ui")
    wait_in_page(browser, lambda: cell(browser, "web", "local", "running") == "0"
                 and cell(browser, "api", "local", "running") == "2",
                 message="the seeded state (web 0, api 2 running)")
    assert browser.execute_script("return document.querySelector('#computes td').textContent") \
        == "local"
    browser.execute_script(RECORD_RUNNING + "window.notReloaded = true;")

    button(browser, "web", "local", "up").click()
    # Running goes from 0 to 1 without a reload, within 2 s of the click.
    wait_in_page(browser, lambda: cell(browser, "web", "local", "running") == "1", timeout=2,
                 message="web running 1 on the page within 2 s")
    assert browser.execute_script("return window.notReloaded") is True
    assert browser.execute_script("return window.seenRunning") == ["0", "1"]
    (pid,) = processes(lab.marker)
    assert genisys.request("GET", "/service/web").json()["replicas"] == {"local": 1}

    # Killed by hand, behind everyone's back, while web's page is open: the reconciler's
    # next look finds 0 running and starts a replacement. That pass writes the status
    # once, with the replacement running, so the drift shows as its event ("from 0 to
    # 1" again) in the live timeline, with the new process's count.
    from selenium.webdriver.common.by import By
    browser.find_element(By.LINK_TEXT, "web").click()
    wait_in_page(browser, lambda: scaled_from_0_to_1(browser) == 1,
                 message="web's page with its first scale from 0 to 1")
    browser.execute_script("window.notReloaded = true;")
    os.kill(pid, signal.SIGKILL)
    wait_in_page(browser, lambda: scaled_from_0_to_1(browser) == 2, timeout=30,
                 message="the drift's replacement in the timeline")
    assert browser.execute_script("return window.notReloaded") is True
    assert browser.execute_script("return document.querySelector("
                                  "'#status [data-field=running]').textContent") == "1"
    (replacement,) = processes(lab.marker)
    assert replacement != pid
    browser.back()
    wait_in_page(browser, lambda: cell(browser, "web", "local", "running") == "1",
                 message="the overview again")

    # "Set to N" on a compute, and − on the total of the placed service.
    number = button(browser, "web", "local", "number")
    number.send_keys("3")
    button(browser, "web", "local", "set").click()
    button(browser, "api", "local", "down").click()
    wait_in_page(browser, lambda: cell(browser, "web", "local", "running") == "3"
                 and cell(browser, "api", "local", "running") == "1", timeout=30,
                 message="web at 3 and api at 1")
    assert len(processes(lab.marker)) == 3 and len(processes(lab.api_marker)) == 1
    assert browser.find_element(By.ID, "service-count").text == "(2)"
    # The computes' numbers follow (a moment after the rows): 3 + 1 desired and running.
    wait_in_page(browser, lambda: browser.execute_script(
        "return Array.from(document.querySelectorAll('#computes td.num'))"
        ".map(td => td.textContent)") == ["2", "4", "4", "—", str(MAX_BATCH)],
        message="local's numbers: 2 services, 4 desired, 4 running, no capacity, batches "
                "of %d" % MAX_BATCH)
    # Its health is the compute's condition (GET /compute/local/status).
    assert browser.execute_script(
        "return document.querySelector('tr[data-compute=\"local\"] .badge').lastChild"
        ".textContent") == "Ready"
    screenshot(browser, "ui-overview.png")

    browser.find_element(By.LINK_TEXT, "web").click()
    wait_in_page(browser, lambda: browser.execute_script(
        "return document.querySelectorAll('#events li').length") > 0
        and browser.execute_script("return document.querySelector("
                                   "'#status [data-field=running]').textContent") == "3",
        message="web's page with its events")
    events = browser.execute_script(
        "return Array.from(document.querySelectorAll('#events li')).map(e => e.textContent)")
    assert any("from 0 to 1" in e or "Scaled" in e for e in events), events
    assert browser.execute_script("return document.querySelectorAll("
                                  "'#chart svg polyline').length") == 2
    browser.find_element(By.CSS_SELECTOR, '#status [data-action="down"]').click()
    wait_in_page(browser, lambda: browser.execute_script(
        "return document.querySelector('#status [data-field=running]').textContent") == "2",
        timeout=30, message="web at 2 on its page")
    screenshot(browser, "ui-service.png")
    assert severe_console_errors(browser) == []

    # Delete, once confirmed; the page says so when the service is gone.
    browser.find_element(By.CSS_SELECTOR, '#delete-box [data-action="delete"]').click()
    assert genisys.request("GET", "/service/web").json()["deleting"] is False  # asked first
    browser.find_element(By.CSS_SELECTOR, '#delete-box [data-action="confirm-delete"]').click()
    wait_in_page(browser, lambda: browser.find_element(By.ID, "service-state").text
                 == "deleted", timeout=30, message="web deleted")
    wait_for(lambda: processes(lab.marker) == [], timeout=30, message="web's processes gone")


@pytest.fixture
def tokens_file(tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text("- {name: admin, token: %s}\n- {name: reader, token: %s, role: read-only}\n"
                    % (ADMIN_TOKEN, READER_TOKEN))
    path.chmod(0o600)
    return str(path)


def test_a_read_only_token_sees_the_actions_disabled_and_a_forged_click_refused(
        start_genisys, tokens_file, browser):
    from selenium.webdriver.common.by import By
    genisys = start_genisys("--tokens-file", tokens_file)
    admin = {"Authorization": "Bearer " + ADMIN_TOKEN}
    r = genisys.request("PUT", "/compute/local", json={"connector": "http://127.0.0.1:9"},
                        headers=admin)
    assert r.status_code == 201
    r = genisys.request("PUT", "/service/web", json={"replicas": {"local": 2}}, headers=admin)
    assert r.status_code == 201

    browser.get(genisys.url + "/ui")
    wait_in_page(browser, lambda: browser.find_element(By.ID, "notice").text
                 == "This genisys needs a token: enter it above.", message="the token asked for")
    assert browser.execute_script("return document.querySelectorAll('#services tbody').length") \
        == 0

    enter_token(browser, READER_TOKEN)
    wait_in_page(browser, lambda: cell(browser, "web", "local", "desired") == "2"
                 and browser.find_element(By.ID, "who").text == "reader (read-only)",
                 message="the services, as the reader")
    # Kept in the tab's session storage; never in the URL or a cookie.
    assert browser.execute_script("return sessionStorage.getItem('genisys.token')") \
        == READER_TOKEN
    assert READER_TOKEN not in browser.current_url and browser.get_cookies() == []
    # Read in one script: a row the page builds again meanwhile leaves no stale element.
    assert browser.execute_script(
        "return Array.from(document.querySelectorAll('#services [data-action]'))"
        ".map(a => a.disabled)") == [True] * 5

    # A forged click: the button enabled by hand. The API refuses, the page says so.
    # Enabled and clicked in one script: the page disables every action again each time
    # it learns the token's role (after each change it hears of), and a click between
    # two WebDriver calls could land on the button disabled again, sending nothing.
    browser.execute_script(
        "var up = document.querySelector("
        "'tr[data-service=\"web\"][data-compute=\"local\"] [data-action=\"up\"]');"
        "up.disabled = false; up.click();")
    wait_in_page(browser, lambda: browser.execute_script(
        "var e = document.querySelector('tbody[data-service=web] .error-row');"
        "return e && !e.hidden ? e.textContent : null;") is not None,
        message="the refusal shown inline")
    shown = browser.execute_script(
        "return document.querySelector('tbody[data-service=web] .error').textContent")
    assert shown.startswith("403 Forbidden: token 'reader' is read-only: POST "
                            "/service/web/upscale needs an admin token")
    r = genisys.request("GET", "/service/web", headers=admin)
    assert r.json()["replicas"] == {"local": 2} and r.json()["generation"] == 1

    # The same tab with the admin token: the actions work.
    browser.find_element(By.ID, "token-forget").click()
    enter_token(browser, ADMIN_TOKEN)
    wait_in_page(browser, lambda: browser.find_element(By.ID, "who").text == "admin (admin)"
                 and button(browser, "web", "local", "up").is_enabled(),
                 message="the admin's enabled actions")
    # The rows may be built again meanwhile: the page lists the services with the admin
    # token as it learns its role.
    click(browser, "web", "local", "up")
    wait_in_page(browser, lambda: cell(browser, "web", "local", "desired") == "3",
                 message="web at 3")


class HostileConnector(http.server.BaseHTTPRequestHandler):
    """A connector that answers every call with an error whose message is markup."""

    def _refuse(self):
        body = json.dumps({"error": {"reason": "Refused", "message": HOSTILE}}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _refuse

    def log_message(self, *args):
        pass


@pytest.fixture
def hostile_connector():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HostileConnector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


def test_markup_in_messages_and_names_stays_text(start_genisys, hostile_connector, browser):
    from selenium.webdriver.common.by import By
    genisys = start_genisys("--poll-interval", "500ms")
    r = genisys.request("PUT", "/compute/evil", json={"connector": hostile_connector})
    assert r.status_code == 201
    # The most markup-like name the rules allow ('<', '>', '&', quotes are refused).
    r = genisys.request("PUT", "/service/x--script--x", json={"replicas": {"evil": 1}})
    assert r.status_code == 201
    refused = genisys.request("PUT", "/service/%3Cb%3E", json={"replicas": {"evil": 1}})
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "name"
    page = genisys.request("GET", "/ui/service/%3Cscript%3E")
    assert page.status_code == 400 and "<script>" not in page.text

    browser.get(genisys.url + "/ui/service/x--script--x")
    wait_in_page(browser, lambda: HOSTILE in (browser.execute_script(
        "var m = document.querySelector('#status [data-field=message]');"
        "return m ? m.textContent : '';") or ""), message="the connector's message as text")
    wait_in_page(browser, lambda: any(HOSTILE in e for e in browser.execute_script(
        "return Array.from(document.querySelectorAll('#events .message'))"
        ".map(e => e.textContent)")), message="the event's message as text")
    assert browser.execute_script("return document.querySelectorAll('main script, main img')"
                                  ".length") == 0
    assert browser.title == "genisys: x--script--x"
    assert browser.find_element(By.ID, "service-name").text == "x--script--x"
    csp = genisys.request("GET", "/ui/service/x--script--x").headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp

    browser.get(genisys.url + "/ui")
    wait_in_page(browser, lambda: cell(browser, "x--script--x", "evil", "condition")
                 == "✕Error", message="the overview's row, in error")
    assert browser.title == "genisys: overview"


async def seed_services(path, count):
    """``count`` services straight into a SQLite store (genisys not running yet): svc-00000,
    svc-00001, ..., with no resources anywhere, but svc-00007, which wants one on the
    compute "far" (whose connector is not there: the reconciler says so, again and
    again)."""
    from genisys.intents import compute_key, service_key
    from genisys.model import Compute, Service
    from genisys.store import Op
    from genisys.store.sqlite import SqliteStore
    async with SqliteStore(path) as store:
        await store.put(compute_key("far"), Compute("far", "http://127.0.0.1:9").to_json())
        ops = [Op.put(service_key(name), Service(
            name=name, replicas={"far": 1} if name == "svc-00007" else {}, generation=1,
            deleting=False).to_store()) for name in ("svc-%05d" % i for i in range(count))]
        await store.transaction(ops)


def test_ten_thousand_services_come_a_page_at_a_time_and_a_change_redraws_its_row_only(
        start_genisys, tmp_path, browser):
    import asyncio

    from selenium.webdriver.common.by import By
    db = str(tmp_path / "many.db")
    asyncio.run(seed_services(db, 10000))
    genisys = start_genisys("--store", "sqlite:///" + db, store=False)
    browser.get(genisys.url + "/ui")
    wait_in_page(browser, lambda: browser.find_element(By.ID, "service-count").text
                 == "(10000)", timeout=30, message="the first page of 10,000")
    shown = browser.execute_script(
        "return Array.from(document.querySelectorAll('#services tbody'))"
        ".map(t => t.dataset.service)")
    assert shown == ["svc-%05d" % i for i in range(50)]
    assert browser.find_element(By.ID, "page-info").text == "1–50 of 10000"

    # A change to one service on the page: its cells change, no other row is rebuilt.
    browser.execute_script("document.querySelectorAll('#services tbody')"
                           ".forEach(t => { t.kept = true; });")
    r = genisys.request("POST", "/service/svc-00007/upscale", json={"compute": "far"})
    assert r.status_code == 202
    wait_in_page(browser, lambda: cell(browser, "svc-00007", "far", "desired") == "2",
                 message="svc-00007 at 2")
    assert browser.execute_script("return Array.from(document.querySelectorAll("
                                  "'#services tbody')).every(t => t.kept)") is True
    # A change to a service on no page shown: nothing on this one moves.
    r = genisys.request("POST", "/service/svc-09000/scale", json={"compute": "far",
                                                                  "number": 1})
    assert r.status_code == 202
    assert browser.execute_script("return document.querySelectorAll('#services tbody')"
                                  ".length") == 50

    browser.find_element(By.ID, "next-page").click()
    wait_in_page(browser, lambda: browser.find_element(By.ID, "page-info").text
                 == "51–100 of 10000", message="the second page")
    browser.find_element(By.ID, "filter").send_keys("0999")
    wait_in_page(browser, lambda: browser.find_element(By.ID, "service-count")
                 .get_attribute("textContent") == "(11 matching)", message="the filtered list")
    shown = browser.execute_script(
        "return Array.from(document.querySelectorAll('#services tbody'))"
        ".map(t => t.dataset.service)")
    assert shown == ["svc-00999"] + ["svc-0999%d" % i for i in range(10)]
