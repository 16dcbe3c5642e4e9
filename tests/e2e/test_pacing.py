"""End to end: a service's behavior paces real processes (docs/scaling.md).

A real genisys and a real process connector (tests.e2e.lab). What the tests assert is
what the connector was ordered, by its own log ("scaling web up from 4 to 8": one line
per order that changed its count), and what really runs (processes carrying the test's
marker, as `ps` would count them): never how long anything took.
"""

import json
import re
import sqlite3

from tests.e2e.lab import FAST, processes
from tests.manifests.test_cli import Cli
from tests.support import intents_dump, wait_for

#: Seconds any convergence may take (a busy CI machine included): 0 -> 40 in steps of
#: 4 a second is ten steps.
CONVERGE = 60
FOUR_A_SECOND = {"scaleUp": {"policies": [{"type": "Pods", "value": 4, "periodSeconds": 1}]}}
_ORDER = re.compile(r"scaling web (up|down) from (\d+) to (\d+)")


def orders(lab):
    """(direction, from, to) of every order that changed web's count, in order, by the
    connectors' own logs."""
    found = []
    for connector in lab.connectors:
        found += [(m.group(1), int(m.group(2)), int(m.group(3)))
                  for m in _ORDER.finditer(connector.log())]
    return found


def view(lab):
    r = lab.genisys.request("GET", "/service/web")
    assert r.status_code == 200, r.text
    return r.json()


def put(lab, body):
    r = lab.genisys.request("PUT", "/service/web", json=body)
    assert r.status_code in (200, 201), r.text
    return r.json()


class Watch:
    """Samples, while waiting, the pacing message and the processes that really run."""

    def __init__(self, lab):
        self.lab = lab
        self.messages = []
        self.counts = []

    def until(self, done, message):
        def check():
            status = view(self.lab)["status"]
            self.messages.append((status.get("pacing") or {}).get("message"))
            self.counts.append(len(processes(self.lab.marker)))
            return done(status)
        wait_for(check, timeout=CONVERGE, interval=0.05, message=message)


def placed_at(number):
    """The status of a placed web on local: every step taken, Converged at ``number``."""
    def done(status):
        entry = status["computes"].get("local") or {}
        pacing = status.get("pacing") or {}
        return (pacing.get("message") == "" and pacing["total"]["paced"] == number
                and entry.get("condition") == "Converged" and entry.get("running") == number)
    return done


def assert_steps_of_four(lab, number, *, downs=0):
    """Every order the connector took added 4 at most, at most ``downs`` removed any, and
    the last left exactly ``number``."""
    taken = orders(lab)
    assert taken, lab.connector.log()
    ups = [(start, to) for d, start, to in taken if d == "up"]
    assert all(0 < to - start <= 4 for start, to in ups), taken
    assert len(taken) - len(ups) <= downs, taken
    if not downs:
        assert [to for _, to in ups] == sorted({to for _, to in ups}), taken
    assert taken[-1] == ("up", taken[-1][1], number), taken
    assert len(ups) >= number // 4, taken


def test_0_to_40_with_pods_4_per_second_goes_in_steps_of_real_processes(lab):
    lab.start_the_connector()
    lab.start()
    watch = Watch(lab)
    put(lab, {"replicas": 40, "placement": {"computes": ["local"]}, "behavior": FOUR_A_SECOND,
              "maxReplicas": 40})
    watch.until(placed_at(40), "web paced to 40")
    lab.converged(40)
    assert_steps_of_four(lab, 40)
    # The status said so on the way, and the processes went up through the steps.
    paced = {m for m in watch.messages if m and m.startswith("Paced: ")}
    assert any(re.match(r"Paced: (\d+) of 40, next step in 1 s$", m) for m in paced), paced
    assert all(0 < int(m.split()[1]) < 40 for m in paced), paced
    assert any(0 < n < 40 for n in watch.counts), watch.counts
    assert max(watch.counts) <= 40 and lab.most_alive() == 40
    # Nothing is paced any more: the plan has nothing to do, describe says so.
    plan = lab.genisys.request("GET", "/plan").json()
    assert [(line["action"], line["to"]) for line in plan["lines"]] == [("none", 40)]
    described = Cli(lab.genisys, lab.tmp_path)("describe", "service", "web").stdout
    assert "Bounds:       in all 0..40\nPacing:       at the intent\n" in described, described


def test_the_plan_shows_the_next_step_as_paced(lab):
    lab.start_the_connector()
    lab.start()
    slow = {"scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 600}]}}
    put(lab, {"replicas": 10, "placement": {"computes": ["local"]}, "behavior": slow})
    watch = Watch(lab)
    watch.until(lambda s: (s.get("pacing") or {}).get("total", {}).get("paced") == 2
                and (s["computes"].get("local") or {}).get("running") == 2, "the first step")
    message = view(lab)["status"]["pacing"]["message"]
    assert re.match(r"Paced: 2 of 10, next step in \d+ s$", message), message
    # The next step is 10 minutes away: nothing to order now.
    line = lab.genisys.request("GET", "/plan").json()["lines"][0]
    assert (line["action"], line["from"], line["to"]) == ("none", 2, 2), line
    # A dry run of a faster behavior shows the step it would take now, as paced: 3 a
    # period, of which the 2 of the first step are taken.
    faster = {"scaleUp": {"policies": [{"type": "Pods", "value": 3, "periodSeconds": 600}]}}
    r = lab.genisys.request("PUT", "/service/web?dryRun=true", json={
        "replicas": 10, "placement": {"computes": ["local"]}, "behavior": faster})
    assert r.status_code == 200, r.text
    assert r.json()["plan"] == [{"service": "web", "compute": "local", "action": "scale up",
                                 "from": 2, "to": 3, "reason": "paced"}]
    described = Cli(lab.genisys, lab.tmp_path)("describe", "service", "web").stdout
    assert "Pacing:       Paced: 2 of 10, next step in" in described, described
    assert orders(lab) == [("up", 0, 2)]


def test_intents_toggling_within_the_scale_down_window_cause_no_scale_down(lab):
    lab.start_the_connector()
    lab.start()
    # Up at once; down only to the highest intent of the last minute.
    behavior = {"scaleUp": {"policies": [{"type": "Pods", "value": 100, "periodSeconds": 1}]},
                "scaleDown": {"stabilizationWindowSeconds": 60}}
    put(lab, {"replicas": {"local": 10}, "behavior": behavior})
    lab.converged(10)

    def seen(intent):
        def done(status):
            scope = (status.get("pacing") or {}).get("computes", {}).get("local") or {}
            return scope.get("intent") == intent and scope.get("paced") == 10
        return done
    watch = Watch(lab)
    for number in (6, 10, 6, 10, 6):
        lab.scale(number)  # POST /scale: a step keeps the behavior
        watch.until(seen(number), "the controller to see %d" % number)
    assert view(lab)["behavior"] == behavior
    status = view(lab)["status"]
    assert re.match(r"local: Paced: 10 of 6, next step in \d+ s \(scaleDown stabilization "
                    r"window\)$", status["pacing"]["message"]), status["pacing"]
    assert status["computes"]["local"]["desired"] == 10
    # The connector was never ordered down, and nothing ran below 10.
    assert [d for d, _, _ in orders(lab)] == ["up"], orders(lab)
    assert min(watch.counts) == 10 and len(processes(lab.marker)) == 10


def test_a_controller_killed_while_pacing_goes_on_after_restart_and_ends_at_40(lab):
    lab.start_the_connector()
    first = lab.start()
    put(lab, {"replicas": 40, "placement": {"computes": ["local"]}, "behavior": FOUR_A_SECOND})
    watch = Watch(lab)
    watch.until(lambda s: 8 <= (s.get("pacing") or {}).get("total", {}).get("paced", 0) < 32,
                "pacing under way")
    first.kill()  # SIGKILL, in the middle of pacing
    killed_at = stored_status(lab)["pacing"]["total"]["paced"]
    lab.genisys = lab.start_genisys(*FAST)
    watch = Watch(lab)
    watch.until(placed_at(40), "web paced to 40 after the restart")
    lab.converged(40)
    # It went on from where the last controller stood, in steps, to exactly 40. (Killed
    # between an order and the status write that records it, the controller restarts
    # one step behind what runs, and orders that step once more: at most one step down.)
    assert_steps_of_four(lab, 40, downs=1)
    later = [int(m.split()[1]) for m in watch.messages if m and m.startswith("Paced: ")]
    assert all(n >= killed_at for n in later), (killed_at, later)
    assert lab.most_alive() == 40


def stored_status(lab):
    """web's status as the store holds it (the controller that wrote it is gone)."""
    conn = sqlite3.connect(str(lab.tmp_path / "genisys.db"))
    try:
        return json.loads(conn.execute("SELECT value FROM kv WHERE key = 'status/web'")
                          .fetchone()[0])
    finally:
        conn.close()


def test_a_manifest_outside_its_bounds_is_refused_naming_the_file_and_field(lab, tmp_path):
    lab.start_the_connector()
    lab.start()
    cli = Cli(lab.genisys, tmp_path)
    before = intents_dump(str(tmp_path / "genisys.db"))
    path = tmp_path / "web.yaml"
    path.write_text("""\
apiVersion: genisys/v1
kind: Service
metadata:
  name: web
spec:
  replicas: {local: 4}
  maxReplicas: 3
""")
    done = cli("apply", "-f", str(path), expect=2)
    assert done.stderr.strip().splitlines()[-1].strip() == (
        "%s: document 1: spec.replicas: service 'web' allows at most 3 replicas in all "
        "(maxReplicas): 4 refused" % path), done.stderr
    path.write_text("""\
apiVersion: genisys/v1
kind: Service
metadata:
  name: web
spec:
  replicas: 4
  perCompute: {maxReplicas: 3}
  behavior: {scaleUp: {policies: [{type: Pods, value: 4, periodSeconds: 0}]}}
""")
    done = cli("apply", "-f", str(path), expect=2)
    assert "%s: document 1: spec.behavior.scaleUp.policies.0.periodSeconds: must be at " \
           "least 1, got 0" % path in done.stderr, done.stderr
    assert intents_dump(str(tmp_path / "genisys.db")) == before
    # Within its bounds it is applied, and shown back as it was written: nothing to diff.
    path.write_text("""\
apiVersion: genisys/v1
kind: Service
metadata:
  name: web
spec:
  replicas: {local: 3}
  maxReplicas: 3
  perCompute: {minReplicas: 1}
  behavior: {scaleDown: {stabilizationWindowSeconds: 10}}
""")
    cli("apply", "-f", str(path))
    cli("diff", "-f", str(path), expect=0)
    spec = json.loads(cli("get", "service", "web", "-o", "json").stdout)["spec"]
    assert spec == {"replicas": {"local": 3}, "maxReplicas": 3,
                    "perCompute": {"minReplicas": 1},
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 10}}}
