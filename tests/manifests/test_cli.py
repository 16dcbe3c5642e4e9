"""The genisys CLI, run as a real command against a real genisys (and, where
resources matter, a real process connector running real processes)."""

import json
import os

import pytest
import yaml

from genisys.cli import build_parser
from genisys.manifests.load import load
from tests.e2e.lab import processes
from tests.manifests.test_load import BROKEN, write
from tests.support import (
    GenisysProcess,
    free_port,
    intents_dump,
    run_client_command,
    run_genisys,
    wait_for,
)


def compute(name, connector, labels=""):
    return """\
    apiVersion: genisys/v1
    kind: Compute
    metadata:
      name: %s%s
    spec:
      connector: %s
    """ % (name, labels, connector)


def service(name, replicas, labels="", placement=None):
    """A Service manifest: counts per compute, or a total (and a placement: JSON is
    YAML's flow style)."""
    return """\
    apiVersion: genisys/v1
    kind: Service
    metadata:
      name: %s%s
    spec:
      replicas: %s%s
    """ % (name, labels, json.dumps(replicas), "" if placement is None
           else "\n      placement: %s" % json.dumps(placement))


class Cli:
    """``genisys ARGS --server`` the genisys given, in ``cwd``: in this process
    (tests.support.run_client_command), or with ``process=True`` as a real process."""

    def __init__(self, genisys, cwd):
        self.genisys = genisys
        self.cwd = str(cwd)

    def __call__(self, *args, env=None, expect=0, process=False):
        run = run_genisys if process else run_client_command
        done = run(list(args) + ["--server", self.genisys.url], cwd=self.cwd, env=env)
        assert "Traceback" not in done.stderr, done.stderr
        if expect is not None:
            assert done.returncode == expect, "genisys %s -> %d\nstdout: %s\nstderr: %s" % (
                " ".join(args), done.returncode, done.stdout, done.stderr)
        return done


def stored(cli):
    return intents_dump(os.path.join(cli.cwd, "genisys.db"))


def test_round_trip_apply_get_apply_and_real_processes_follow(lab, tmp_path):
    lab.start_the_connector()
    lab.start()
    cli = Cli(lab.genisys, tmp_path)
    folder = tmp_path / "manifests"
    connector = "http://127.0.0.1:%d" % lab.connector_port
    write(folder, "computes.yaml", compute("local", connector, "\n      labels: {site: lab}"))
    write(folder, "services/web.yaml", service("web", {"local": 2}, "\n      labels: {app: web}"))
    write(folder, "services/other.yml", service("other", {"local": 0}))

    # The command families run as real processes here (the console script's exit
    # statuses and streams); elsewhere mostly in the test's own process.
    done = cli("apply", "-f", str(folder), process=True)
    assert done.stdout.splitlines() == ["compute/local configured",  # lab.start() made it
                                        "service/other created", "service/web created"]
    lab.converged(2)

    # get -o yaml gives back the same objects, and can itself be applied.
    listing = cli("get", "services", "-o", "yaml", process=True).stdout + "---\n" + \
        cli("get", "computes", "-o", "yaml").stdout
    write(tmp_path, "listing/all.yaml", listing)
    given = load([str(folder)], known_computes=[])
    got = load([str(tmp_path / "listing")], known_computes=[])
    assert sorted((m.kind, m.name, m.labels, m.spec) for m in got) == \
        sorted((m.kind, m.name, m.labels, m.spec) for m in given)

    assert cli("apply", "-f", str(folder)).stdout.splitlines() == [
        "compute/local unchanged", "service/other unchanged", "service/web unchanged"]
    assert cli("apply", "-f", str(tmp_path / "listing")).stdout.count("unchanged") == 3

    write(folder, "services/web.yaml", service("web", {"local": 3}, "\n      labels: {app: web}"))
    assert "service/web configured" in cli("apply", "-f", str(folder)).stdout
    lab.converged(3)
    write(folder, "services/web.yaml", service("web", {"local": 1}, "\n      labels: {app: web}"))
    assert "service/web configured" in cli("apply", "-f", str(folder)).stdout
    lab.converged(1)

    table = cli("get", "services", process=True).stdout.splitlines()
    assert table[0].split() == ["NAME", "TOTAL", "PLACEMENT", "COMPUTE", "DESIRED", "RUNNING",
                                "CONDITION", "AGE"]
    assert table[2].split()[:7] == ["web", "1", "-", "local", "1", "1", "Converged"]
    described = cli("describe", "service", "web", process=True).stdout
    assert "app=web" in described and "Converged" in described and "Events:" in described

    # delete -f removes the services (waiting for their processes to stop), then the compute.
    done = cli("delete", "-f", str(folder), process=True)
    assert done.stdout.splitlines() == ["service/other deleted", "service/web deleted",
                                        "compute/local deleted"]
    assert processes(lab.marker) == []
    assert cli("get", "services", "-o", "name").stdout == ""


def test_diff_exit_codes_and_dry_run_writes_nothing(cli, tmp_path):
    folder = tmp_path / "m"
    write(folder, "a.yaml", compute("c1", "http://127.0.0.1:%d" % free_port()))
    write(folder, "b.yaml", service("s1", {"c1": 2}))
    done = cli("diff", "-f", str(folder), expect=1, process=True)
    assert "+++ service/s1 (manifests)" in done.stdout and "+    c1: 2" in done.stdout

    before = stored(cli)
    done = cli("apply", "-f", str(folder), "--dry-run")
    assert done.stdout.splitlines() == ["compute/c1 created (dry run)",
                                        "service/s1 created (dry run)"]
    assert stored(cli) == before

    cli("apply", "-f", str(folder))
    assert cli("diff", "-f", str(folder), expect=0).stdout == ""
    write(folder, "b.yaml", service("s1", {"c1": 5}))
    done = cli("diff", "-f", str(folder), expect=1)
    assert "-    c1: 2" in done.stdout and "+    c1: 5" in done.stdout
    before = stored(cli)
    assert "service/s1 configured (dry run)" in cli("apply", "-f", str(folder),
                                                    "--dry-run").stdout
    assert stored(cli) == before
    # An error is exit 2 for diff (1 means "differences").
    assert cli("diff", "-f", str(tmp_path / "missing"), expect=2).stderr


def test_prune_removes_only_what_the_manifests_no_longer_name(cli, tmp_path, start_connector):
    # A real (simulated) connector: a pruned service is removed once it confirms 0 run.
    connector = start_connector(backend="simulated").url
    folder = tmp_path / "m"
    write(folder, "c.yaml", compute("c1", connector))
    write(folder, "keep.yaml", service("keep", {"c1": 0}))
    write(folder, "gone.yaml", service("gone", {"c1": 0}))
    cli("apply", "-f", str(folder))
    # Made through the API, and by another manager: never pruned by this one.
    r = cli.genisys.request("PUT", "/service/by-api", json={"replicas": {"c1": 0}})
    assert r.status_code == 201
    other = tmp_path / "other"
    write(other, "x.yaml", service("theirs", {"c1": 0}))
    cli("apply", "-f", str(other), "--manager", "team-b")

    os.remove(str(folder / "gone.yaml"))
    assert cli("apply", "-f", str(folder)).stdout.count("pruned") == 0  # not without --prune
    done = cli("diff", "-f", str(folder), "--prune", expect=1)
    assert "--- service/gone (live)" in done.stdout
    before = stored(cli)
    assert "service/gone pruned (dry run)" in cli("apply", "-f", str(folder), "--prune",
                                                  "--dry-run").stdout
    assert stored(cli) == before
    done = cli("apply", "-f", str(folder), "--prune")
    assert done.stdout.splitlines() == ["compute/c1 unchanged", "service/keep unchanged",
                                        "service/gone pruned"]
    wait_for(lambda: "gone" not in cli("get", "services", "-o", "name").stdout,
             message="the pruned service to be removed")
    assert cli("get", "services", "-o", "name").stdout.split() == [
        "service/by-api", "service/keep", "service/theirs"]


def test_a_broken_folder_is_reported_whole_and_nothing_is_applied(cli, tmp_path):
    folder = tmp_path / "m"
    write(folder, "0-good.yaml", compute("c1", "http://127.0.0.1:%d" % free_port()))
    for i, (_, content, _) in enumerate(BROKEN):
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(str(folder / ("%02d.yaml" % (i + 1))), mode) as f:
            f.write(content)
    before = stored(cli)
    done = cli("apply", "-f", str(folder), expect=2)
    assert done.stdout == ""
    for i, (_, _, (document, field, words)) in enumerate(BROKEN):
        path = str(folder / ("%02d.yaml" % (i + 1)))
        lines = [line.strip() for line in done.stderr.splitlines()
                 if line.strip().startswith(path + ":")]
        prefix = path + ": " + ("document %d: " % document if document else "") + \
            ("%s: " % field if field else "")
        assert any(line.startswith(prefix) and words in line for line in lines), \
            (prefix, words, lines)
    assert stored(cli) == before


def test_get_formats_and_scale_commands(cli, tmp_path):
    connector = "http://127.0.0.1:%d" % free_port()
    write(tmp_path, "m/c.yaml", compute("c1", connector, "\n      labels: {zone: a}"))
    write(tmp_path, "m/s.yaml", service("web", {"c1": 1}))
    cli("apply", "-f", str(tmp_path / "m"))
    assert cli("get", "computes", "-o", "name").stdout == "compute/c1\n"
    [row] = cli("get", "computes").stdout.splitlines()[1:]
    # Nothing listens at its connector: not observed long enough to be NotReady (30 s).
    assert row.split() == ["c1", "Unknown", connector, "-", "genisys-cli", "zone=a"]
    document = json.loads(cli("get", "service", "web", "-o", "json").stdout)
    assert document["spec"] == {"replicas": {"c1": 1}}
    assert json.loads(cli("get", "services", "-o", "json").stdout)["kind"] == "List"
    assert yaml.safe_load(cli("get", "compute", "c1", "-o", "yaml").stdout)["metadata"] == {
        "name": "c1", "labels": {"zone": "a"}, "managedBy": "genisys-cli"}

    assert cli("scale", "service", "web", "--compute", "c1", "--replicas", "4",
               process=True).stdout == \
        "service/web scaled: 4 desired on c1\n"
    assert "5 desired" in cli("upscale", "service", "web", "--compute", "c1",
                              process=True).stdout
    assert "4 desired" in cli("downscale", "service", "web", "--compute", "c1").stdout
    assert cli.genisys.request("GET", "/service/web").json()["replicas"] == {"c1": 4}
    # upscale creates a service on first use, as the API does.
    cli("upscale", "service", "new", "--compute", "c1")
    described = cli("describe", "compute", "c1").stdout
    assert "Connector:    %s" % connector in described and "new" in described
    assert "Status:       Unknown (NotObserved): " in described


#: args, exit status, words on stderr
ERRORS = [
    (["get", "nodes"], 2, "must be computes or services"),
    (["get", "services", "-o", "xml"], 2, "invalid choice"),
    (["scale", "service", "web", "--compute", "c1"], 2, "--replicas"),
    (["scale", "service", "web", "--compute", "c1", "--replicas", "-1"], 2, "whole number"),
    (["scale", "compute", "web", "--compute", "c1", "--replicas", "1"], 2, "only services"),
    (["scale", "service", "web", "--compute", "c1", "--replicas", "5000"], 1,
     "number: must be at most 1000"),
    (["get", "service", "nope"], 1, "service 'nope' does not exist (404 NotFound)"),
    (["get", "service", "a/b"], 2, "not a valid name"),
    (["downscale", "service", "web", "--compute", "nowhere"], 1, "404"),
    (["delete", "service"], 2, "give a kind and a name"),
    (["delete", "service", "nope"], 1, "does not exist"),
    (["apply"], 2, "-f"),
    (["apply", "-f", "does-not-exist.yaml"], 2, "does-not-exist.yaml: no such file or folder"),
    (["describe", "service"], 2, "NAME"),
    (["frobnicate"], 2, "unrecognized arguments: frobnicate"),  # genisys.py: serve frobnicate
    (["rebalance", "compute", "c1"], 2, "only services can be rebalanced"),
    (["rebalance", "service", "nope"], 1, "service 'nope' does not exist"),
    (["rebalance", "service", "nope", "--dry-run"], 1, "service 'nope' does not exist"),
    (["scale", "service", "nope", "--replicas", "2", "--bogus"], 2,
     "unrecognized arguments: --bogus"),
    (["downscale", "service", "nope", "--dry-run"], 1, "service 'nope' does not exist"),
    (["apply", "--plan", "nope.json"], 2, "cannot read nope.json"),
    (["apply", "--plan", "nope.json", "-f", "x.yaml"], 2, "give it without -f and --prune"),
]


@pytest.fixture(scope="module")
def unwritten_cli(tmp_path_factory):
    """The cli fixture's genisys, one for every case of ERRORS: each asserts that it
    writes nothing, so the next one meets the same empty store as a fresh genisys."""
    workdir = tmp_path_factory.mktemp("errors")
    genisys = GenisysProcess(str(workdir), ["--store", "sqlite:///%s" % (workdir / "genisys.db"),
                                            "--poll-interval", "500ms"]).start()
    yield Cli(genisys, workdir)
    genisys.kill()


@pytest.mark.parametrize("args, status, words", ERRORS, ids=[" ".join(e[0]) for e in ERRORS])
def test_bad_usage_and_failed_requests(unwritten_cli, args, status, words):
    cli = unwritten_cli
    before = stored(cli)
    done = cli(*args, expect=status)
    assert words in done.stderr, done.stderr
    assert done.stdout == ""
    assert stored(cli) == before


def test_timeouts_are_durations_as_every_setting_and_a_bad_one_names_its_flag(cli):
    args = build_parser().parse_args(["delete", "service", "web", "--wait-timeout", "2m",
                                      "--request-timeout", "500ms"])
    assert (args.wait_timeout, args.request_timeout) == (120.0, 0.5)
    before = stored(cli)
    done = cli("get", "computes", "--request-timeout", "500ms")
    assert (done.stdout, done.stderr) == ("", "No computes found.\n")
    done = cli("delete", "service", "nope", "--wait-timeout", "2m", expect=1)
    assert "service 'nope' does not exist" in done.stderr
    for flag, value, words in [
            ("--wait-timeout", "2x", "'2x' is not a duration (like 15s, 500ms or 2m)"),
            ("--request-timeout", "0", "must be more than 0 and at most 24h, got '0'"),
            ("--request-timeout", "25h", "must be more than 0 and at most 24h, got '25h'")]:
        done = cli("delete", "service", "web", flag, value, expect=2)
        assert "error: argument %s: %s" % (flag, words) in done.stderr, done.stderr
        assert done.stdout == ""
    assert stored(cli) == before


def test_an_unreachable_server_is_a_clear_error(tmp_path):
    done = run_genisys(["get", "services", "--server", "http://127.0.0.1:%d" % free_port()],
                       cwd=str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.startswith("genisys: cannot reach genisys at http://127.0.0.1:")
    assert "connection refused" in done.stderr and "Traceback" not in done.stderr


def test_tokens_come_from_the_environment(start_genisys, tmp_path):
    genisys = start_genisys(env={"GENISYS_TOKEN": "cli-admin-token-123456"})
    cli = Cli(genisys, tmp_path)
    assert "401" in cli("get", "computes", expect=1).stderr
    assert cli("get", "computes", env={"GENISYS_TOKEN": "cli-admin-token-123456"}).returncode == 0


def test_every_command_has_help_with_examples(tmp_path):
    for command in ("apply", "diff", "plan", "delete", "get", "describe", "scale", "upscale",
                    "downscale", "rebalance"):
        # One as a real process (its exit status), the others in this one.
        run = run_genisys if command == "apply" else run_client_command
        done = run([command, "--help"], cwd=str(tmp_path))
        assert done.returncode == 0, done.stderr
        assert "examples:" in done.stdout and "genisys %s" % command in done.stdout
