"""`genisys plan` and `genisys apply --plan`, run as the real genisys command against
a real genisys (and simulated connectors where resources must run): what the
controller would do, what applying manifests would do (nothing written), a saved
plan carried out, a stale one refused with what moved, bad plan files, and the
exit codes (0 nothing to do, 1 an error, 2 something to do)."""

import json
import os

from tests.manifests.test_cli import Cli, compute, service, stored
from tests.manifests.test_load import write
from tests.manifests.test_placement_cli import cells, placed, placed_as
from tests.support import free_port, run_genisys, wait_for


def everything(cli):
    """What GET /service and GET /compute answer, without the status the reconciler
    keeps writing on its own."""
    services = cli.genisys.request("GET", "/service").json()
    return ({n: {k: v for k, v in s.items() if k != "status"} for n, s in services.items()},
            cli.genisys.request("GET", "/compute").json())


def unchanged(cli):
    """A check that the store is the same later: intents, versions and what the API shows."""
    before = stored(cli), everything(cli)
    return lambda: (stored(cli), everything(cli)) == before


def version(cli, path):
    """An object's resourceVersion, from its ETag."""
    return int(cli.genisys.request("GET", path).headers["ETag"].strip('"'))


def plan_file(cli, folder, name="p.json", env=None):
    done = cli("plan", "-f", str(folder), "-o", "json", env=env, expect=None)
    assert done.returncode in (0, 2), done.stderr
    path = os.path.join(cli.cwd, name)
    with open(path, "w") as f:
        f.write(done.stdout)
    return path, json.loads(done.stdout)


def test_plan_shows_what_the_controller_would_do_with_its_exit_codes(start_genisys,
                                                                     start_connector,
                                                                     tmp_path):
    cli = Cli(start_genisys("--poll-interval", "500ms"), tmp_path)
    done = cli("plan")
    assert done.stdout.endswith(": 0 lines, 0 with something to do.\n")

    connector = start_connector(backend="simulated").url
    write(tmp_path, "m/a.yaml", compute("c1", connector) + "---\n"
          + placed("web", 2, {"computes": ["c1"]}))
    cli("apply", "-f", str(tmp_path / "m"))
    placed_as(cli.genisys, "web", 2)
    wait_for(lambda: cli.genisys.request("GET", "/plan").json()["changes"] == 0,
             message="nothing left to do")
    done = cli("plan", expect=0)
    assert [(r["SERVICE"], r["COMPUTE"], r["ACTION"], r["FROM"], r["TO"], r["REASON"])
            for r in cells(done.stdout)] == [("web", "c1", "none", "2", "2", "-")]

    # A compute nobody answers for: what genisys would do there never gets done.
    write(tmp_path, "m/b.yaml", compute("dead", "http://127.0.0.1:%d" % free_port()) + "---\n"
          + service("api", {"dead": 3}))
    cli("apply", "-f", str(tmp_path / "m"))
    wait_for(lambda: "dead" in cli.genisys.request("GET", "/service/api").json()["status"][
        "computes"], message="the reconciler to try api on dead")
    check = unchanged(cli)
    done = cli("plan", expect=2, process=True)
    rows = cells(done.stdout)
    assert ("api", "dead", "scale up", "-", "3", "drift") in [
        (r["SERVICE"], r["COMPUTE"], r["ACTION"], r["FROM"], r["TO"], r["REASON"]) for r in rows]
    assert done.stdout.splitlines()[-1].endswith(": 2 lines, 1 with something to do.")
    document = json.loads(cli("plan", "-o", "json", expect=2).stdout)
    assert set(document) == {"revision", "changes", "lines"} and document["changes"] == 1
    assert {line["service"] for line in document["lines"]} == {"api", "web"}
    assert check()


#: args, words on stderr: every error of plan is exit 1 (2 means "something to do").
PLAN_ERRORS = [
    (["plan", "--bogus"], "unrecognized arguments: --bogus"),
    (["plan", "-o", "yaml"], "argument -o/--output: invalid choice: 'yaml'"),
    (["plan", "--prune"], "--prune: plans a prune of manifests: give them with -f"),
    (["plan", "-f", "missing.yaml"], "missing.yaml: no such file or folder"),
    (["plan", "--request-timeout", "0"], "argument --request-timeout"),
]


def test_plan_errors_exit_1_and_write_nothing(cli, tmp_path):
    check = unchanged(cli)
    for args, words in PLAN_ERRORS:
        done = cli(*args, expect=1)
        assert words in done.stderr, (args, done.stderr)
        assert done.stdout == ""
    done = run_genisys(["plan", "--server", "http://127.0.0.1:%d" % free_port()], cwd=cli.cwd)
    assert done.returncode == 1 and "cannot reach genisys" in done.stderr
    assert check()


def test_plan_of_manifests_writes_nothing_and_apply_plan_carries_it_out(start_genisys,
                                                                        start_connector,
                                                                        tmp_path):
    connectors = [start_connector(backend="simulated").url for _ in range(2)]
    cli = Cli(start_genisys("--poll-interval", "500ms"), tmp_path)
    folder = tmp_path / "m"
    write(folder, "computes.yaml", compute("c1", connectors[0]) + "---\n"
          + compute("c2", connectors[1]))
    write(folder, "web.yaml", placed("web", 2, {"computes": ["c1", "c2"]}))
    cli("apply", "-f", str(folder))
    web = placed_as(cli.genisys, "web", 2)

    # More of web; a new compute (nobody answers there: nothing has to run for a plan),
    # and a service on it, which genisys can't check before the compute is there.
    write(folder, "web.yaml", placed("web", 4, {"computes": ["c1", "c2"]}))
    write(folder, "c3.yaml", compute("c3", "http://127.0.0.1:%d" % free_port(),
                                     "\n      labels: {zone: b}"))
    write(folder, "api.yaml", service("api", {"c1": 1, "c3": 2}))
    check = unchanged(cli)
    path, document = plan_file(cli, folder)
    done = cli("plan", "-f", str(folder), expect=2)
    assert check()

    assert isinstance(document["revision"], int)
    assert document["live"] == {"Compute": {c: version(cli, "/compute/" + c)
                                            for c in ("c1", "c2")},
                                "Service": {"web": web["resourceVersion"]}}
    assert [(o["action"], o["kind"], o["name"], o["resourceVersion"]) for o in
            document["objects"]] == [("create", "Compute", "c3", None),
                                     ("create", "Service", "api", None),
                                     ("configure", "Service", "web", web["resourceVersion"])]
    assert document["objects"][2]["body"] == {
        "replicas": 4, "placement": {"computes": ["c1", "c2"]}, "labels": {},
        "managedBy": "genisys-cli"}
    assert document["objects"][0]["body"]["labels"] == {"zone": "b"}
    lines = {(line["service"], line["compute"]): (line["action"], line["from"], line["to"],
                                                  line["reason"]) for line in document["lines"]}
    assert lines == {("web", "c1"): ("scale up", 1, 2, "placement"),
                     ("web", "c2"): ("scale up", 1, 2, "placement"),
                     ("api", "c1"): ("create", None, 1, "intent"),
                     ("api", "c3"): ("create", None, 2, "intent")}
    assert document["changes"] == 4
    rows = [(r["SERVICE"], r["COMPUTE"], r["ACTION"], r["FROM"], r["TO"], r["REASON"])
            for r in cells(done.stdout)]
    assert rows == [("api", "c1", "create", "-", "1", "intent"),
                    ("api", "c3", "create", "-", "2", "intent"),
                    ("web", "c1", "scale up", "1", "2", "placement"),
                    ("web", "c2", "scale up", "1", "2", "placement")]
    assert "Apply would create compute/c3, create service/api, configure service/web.\n" \
        in done.stdout

    # apply --dry-run checks the same writes with genisys, and writes nothing either.
    assert cli("apply", "-f", str(folder), "--dry-run").stdout.splitlines() == [
        "compute/c1 unchanged (dry run)", "compute/c2 unchanged (dry run)",
        "compute/c3 created (dry run)", "service/api created (dry run)",
        "service/web configured (dry run)"]
    assert cli("apply", "--plan", path, "--dry-run").stdout.splitlines() == [
        "compute/c3 created (dry run)", "service/api created (dry run)",
        "service/web configured (dry run)"]
    assert check()

    assert cli("apply", "--plan", path).stdout.splitlines() == [
        "compute/c3 created", "service/api created", "service/web configured"]
    assert cli.genisys.request("GET", "/service/web").json()["replicas"] == 4
    assert cli.genisys.request("GET", "/service/api").json()["replicas"] == {"c1": 1, "c3": 2}
    done = cli("plan", "-f", str(folder), expect=0)
    assert "Apply would write nothing: the manifests match genisys.\n" in done.stdout
    _, again = plan_file(cli, folder, "again.json")
    assert again["objects"] == []

    # The same plan a second time: its own writes moved the store.
    check = unchanged(cli)
    done = cli("apply", "--plan", path, expect=1)
    assert done.stderr.startswith("genisys: the plan is stale: since revision %d, compute c3 "
                                  "was created (now at " % document["revision"])
    assert "service web changed (now at" in done.stderr
    assert done.stderr.endswith("; make a new plan\n") and done.stdout == ""
    # A plan with nothing to write applies nothing, and says so.
    done = cli("apply", "--plan", os.path.join(cli.cwd, "again.json"))
    assert done.stdout.startswith("the plan has no objects to write: nothing applied")
    assert check()


def test_a_stale_plan_is_refused_saying_what_moved(start_genisys, tmp_path):
    cli = Cli(start_genisys(), tmp_path)
    folder = tmp_path / "m"
    dead = "http://127.0.0.1:%d" % free_port()
    write(folder, "a.yaml", compute("c1", dead) + "---\n"
          + placed("web", 2, {"computes": ["c1"]}))
    cli("apply", "-f", str(folder))
    spare = cli.genisys.request("PUT", "/compute/spare", json={"connector": dead})
    assert spare.status_code == 201

    write(folder, "a.yaml", compute("c1", dead) + "---\n"
          + placed("web", 3, {"computes": ["c1"]}))
    path, document = plan_file(cli, folder)
    # Meanwhile, someone scales web: the plan would undo it.
    scaled = cli.genisys.request("POST", "/service/web/scale", json={"number": 5})
    assert scaled.status_code == 202
    check = unchanged(cli)
    done = cli("apply", "--plan", path, expect=1)
    assert done.stderr == (
        "genisys: the plan is stale: since revision %d, service web changed (now at %d); "
        "make a new plan\n" % (document["revision"], scaled.json()["resourceVersion"]))
    assert done.stdout == ""
    assert check() and cli.genisys.request("GET", "/service/web").json()["replicas"] == 5

    # A compute deleted since the plan.
    path, document = plan_file(cli, folder, "p2.json")
    assert cli.genisys.request("DELETE", "/compute/spare").status_code == 200
    check = unchanged(cli)
    done = cli("apply", "--plan", path, expect=1)
    assert done.stderr == ("genisys: the plan is stale: since revision %d, compute spare was "
                           "deleted; make a new plan\n" % document["revision"])
    assert check()

    path, _ = plan_file(cli, folder, "p3.json")
    assert cli("apply", "--plan", path).stdout == "service/web configured\n"
    web = cli.genisys.request("GET", "/service/web").json()
    assert web["replicas"] == 3

    # A plan of a prune: what the manifests no longer name goes.
    write(folder, "a.yaml", compute("c1", dead))
    done = cli("plan", "-f", str(folder), "--prune", "-o", "json", expect=2)
    document = json.loads(done.stdout)
    assert document["objects"] == [{"action": "prune", "kind": "Service", "name": "web",
                                     "resourceVersion": web["resourceVersion"], "body": None}]
    assert {line["compute"]: line["action"] for line in document["lines"]} == {"c1": "delete"}
    path = os.path.join(cli.cwd, "p4.json")
    with open(path, "w") as f:
        f.write(done.stdout)
    assert cli("apply", "--plan", path).stdout == "service/web pruned\n"
    assert cli.genisys.request("GET", "/service/web").json()["deleting"] is True


def valid_object(name):
    return {"action": "create", "kind": "Service", "name": name, "resourceVersion": None,
            "body": {"replicas": 2, "labels": {}, "managedBy": "genisys-cli"}}


#: content of a plan file, words of the message (after "genisys: <path>: ")
BAD_PLANS = [
    ("not json at all", "not valid JSON (Expecting value: line 1 column 1 (char 0))"),
    ("", "not valid JSON"),
    ("[1, 2]", "plan: must be a JSON object (the output of genisys plan -o json), got array"),
    ('{"lines": [], "objects": []}', "revision: is required (the store revision the plan "
                                     "was made at)"),
    ('{"revision": "41"}', "revision: must be a whole number, got '41'"),
    ('{"revision": -1}', "revision: must be a whole number, got -1"),
    ('{"revision": 1, "objects": {}}', "objects: must be an array, got object"),
    (json.dumps({"revision": 1, "objects": [valid_object("ok"), dict(
        valid_object("web"), action="replace")]}),
     "objects[1].action: must be one of create, configure, prune, got 'replace'"),
    (json.dumps({"revision": 1, "objects": [valid_object("ok"), dict(
        valid_object("web"), action="configure")]}),
     "objects[1].resourceVersion: a replacement needs the version it replaces, got None"),
    (json.dumps({"revision": 1, "objects": [dict(valid_object("ok"), body=None)]}),
     "objects[0].body: must be an object (what to write), got null"),
    (json.dumps({"revision": 1, "objects": [dict(valid_object("ok"), kind="Pod")]}),
     "objects[0].kind: must be Compute or Service, got 'Pod'"),
    (json.dumps({"revision": 1, "objects": [valid_object("no spaces")]}),
     "objects[0].name: 'no spaces' is not a valid name"),
    (json.dumps({"revision": 1, "objects": [{"kind": "Service", "name": "x"}]}),
     "objects[0].action: is required"),
]


def test_bad_plan_files_are_refused_naming_the_problem_and_nothing_is_written(cli,
                                                                             tmp_path):
    check = unchanged(cli)
    for i, (content, words) in enumerate(BAD_PLANS):
        path = str(tmp_path / ("bad-%d.json" % i))
        with open(path, "w") as f:
            f.write(content)
        done = cli("apply", "--plan", path, expect=2)
        assert done.stderr.startswith("genisys: %s: " % path), done.stderr
        assert words in done.stderr, (content, done.stderr)
        assert done.stdout == ""
    assert check()
    assert cli.genisys.request("GET", "/service/ok").status_code == 404


def test_a_plan_keeps_the_name_of_a_token_variable_never_the_token(cli, tmp_path):
    folder = tmp_path / "m"
    write(folder, "c.yaml", compute("c1", "http://127.0.0.1:%d" % free_port()).replace(
        "spec:\n      connector:", "spec:\n      tokenFromEnv: C1_TOKEN\n      connector:"))
    env = {"C1_TOKEN": "secret-connector-token-1"}
    path, document = plan_file(cli, folder, env=env)
    with open(path) as f:
        assert "secret-connector-token-1" not in f.read()
    [saved] = document["objects"]
    assert saved["tokenFromEnv"] == "C1_TOKEN" and "token" not in saved["body"]

    check = unchanged(cli)
    done = cli("apply", "--plan", path, env={"C1_TOKEN": ""}, expect=2)
    assert done.stderr == ("genisys: %s: objects[0].tokenFromEnv: the environment variable "
                           "'C1_TOKEN' is not set\n" % path)
    assert check()
    assert cli("apply", "--plan", path, env=env).stdout == "compute/c1 created\n"
    assert cli.genisys.request("GET", "/compute/c1").json()["token"] == "set"


def test_a_write_genisys_would_refuse_fails_the_plan_and_the_dry_run(start_genisys, tmp_path):
    cli = Cli(start_genisys("--max-services", "1"), tmp_path)
    folder = tmp_path / "m"
    write(folder, "a.yaml", placed("one", 1, {}))
    cli("apply", "-f", str(folder))
    write(folder, "b.yaml", placed("two", 1, {}))
    check = unchanged(cli)
    for args, status in ((["plan", "-f", str(folder)], 1),
                         (["apply", "-f", str(folder), "--dry-run"], 1)):
        done = cli(*args, expect=status)
        assert done.stderr.startswith("genisys: service/two: name: there are already 1 "
                                      "services, the maximum (max_services)"), done.stderr
        assert "(409 LimitExceeded)" in done.stderr
    assert check()
