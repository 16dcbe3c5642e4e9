"""Placed services (a total and a placement) through the CLI and manifests: apply,
diff, get, describe, a listing applied back, the steps without a compute and
rebalance, run as the real genisys command against a real genisys and simulated
connectors."""

import re

import yaml

from genisys.manifests.load import load
from tests.manifests.test_cli import Cli, compute, service, stored
from tests.manifests.test_load import write
from tests.support import wait_for


def placed(name, total, placement):
    """A Service manifest with a total and a placement."""
    return service(name, total, placement=placement)


def cells(text):
    """The rows of a table the CLI printed, as {column: cell} (cells may hold spaces:
    the columns start where their header does)."""
    lines = text.splitlines()
    starts = [(m.group(), m.start()) for m in re.finditer(r"\S+", lines[0])]
    rows = []
    for line in lines[1:]:
        if not line.strip():
            break
        rows.append({name: line[start:starts[i + 1][1] if i + 1 < len(starts) else None]
                     .strip() for i, (name, start) in enumerate(starts)})
    return rows


def placed_as(genisys, name, total):
    """Wait until genisys has placed ``name``'s total and it runs everywhere; its view."""
    def done():
        view = genisys.request("GET", "/service/" + name).json()
        placement = view["status"].get("placement") or {}
        entries = view["status"]["computes"]
        if placement.get("placed") == total and placement.get("total") == total and all(
                entries.get(c, {}).get("running") == n
                for c, n in placement["assignment"].items()):
            return view
        return None
    return wait_for(done, message="%s placed and running" % name)


def test_placed_services_apply_show_diff_and_round_trip(start_genisys, start_connector,
                                                        tmp_path):
    connectors = [start_connector(backend="simulated").url for _ in range(2)]
    cli = Cli(start_genisys("--poll-interval", "500ms"), tmp_path)
    folder = tmp_path / "m"
    write(folder, "computes.yaml", compute("dc1", connectors[0], "\n      labels: {region: eu}")
          + "---\n" + compute("dc2", connectors[1], "\n      labels: {region: eu}"))
    # "later" is not registered: a placement may name a compute before it exists.
    write(folder, "web.yaml", placed("web", 4, {"computes": ["dc1", "dc2", "later"]}))
    write(folder, "eu.yaml", placed("eu", 3, {"selector": {"matchLabels": {"region": "eu"}},
                                              "strategy": "Weighted", "weights": {"dc1": 2}}))
    write(folder, "map.yaml", service("map", {"dc1": 1}))
    assert cli("apply", "-f", str(folder)).stdout.splitlines() == [
        "compute/dc1 created", "compute/dc2 created", "service/eu created",
        "service/map created", "service/web created"]
    placed_as(cli.genisys, "web", 4)
    eu = placed_as(cli.genisys, "eu", 3)

    rows = cells(cli("get", "services").stdout)
    assert [(r["NAME"], r["TOTAL"], r["PLACEMENT"], r["COMPUTE"], r["DESIRED"], r["RUNNING"])
            for r in rows] == [
        ("eu", "3", "Weighted: region=eu", "dc1", "2", "2"),
        ("eu", "3", "Weighted: region=eu", "dc2", "1", "1"),
        ("map", "1", "-", "dc1", "1", "1"),
        ("web", "4", "Spread: dc1,dc2,later", "dc1", "2", "2"),
        ("web", "4", "Spread: dc1,dc2,later", "dc2", "2", "2")]

    described = cli("describe", "service", "eu").stdout
    assert "Total:        3 (placed by genisys)" in described
    assert "Placement:    Weighted: region=eu" in described
    assert re.search(r"Weights: +dc1=2\n", described)
    assert "Condition:    Placed: %s" % eu["status"]["placement"]["message"] in described
    assignment = described.split("Assignment:")[1].split("Replicas:")[0]
    assert [(r["COMPUTE"], r["ASSIGNED"], r["SHARE"], r["WHY"])
            for r in cells(assignment.split("\n", 1)[1])] == [
        (c, "%d" % eu["status"]["placement"]["assignment"][c],
         "%d" % eu["status"]["placement"]["shares"][c], eu["status"]["placement"]["reasons"][c])
        for c in ("dc1", "dc2")]
    assert "Placement:    -" in cli("describe", "service", "map").stdout
    described = cli("describe", "compute", "dc2").stdout
    assert [(r["SERVICE"], r["PLACEMENT"], r["DESIRED"]) for r in cells(
        described.split("Services:\n")[1])] == [("eu", "Weighted: region=eu", "1"),
                                                ("web", "Spread: dc1,dc2,later", "2")]

    # The live specs, placement included, are what the manifests say.
    assert cli("diff", "-f", str(folder), expect=0).stdout == ""

    # A listing applies back as it is.
    listing = cli("get", "services", "-o", "yaml").stdout
    assert [d["spec"] for d in yaml.safe_load_all(listing)][0] == {
        "replicas": 3, "placement": {"selector": {"matchLabels": {"region": "eu"}},
                                     "strategy": "Weighted", "weights": {"dc1": 2}}}
    write(tmp_path, "backup/services.yaml", listing)
    got = load([str(tmp_path / "backup")], known_computes=["dc1", "dc2"])
    given = [m for m in load([str(folder)], known_computes=[]) if m.kind == "Service"]
    assert sorted((m.name, m.labels, m.spec) for m in got) == \
        sorted((m.name, m.labels, m.spec) for m in given)
    before = stored(cli)
    assert cli("apply", "-f", str(tmp_path / "backup")).stdout.splitlines() == [
        "service/eu unchanged", "service/map unchanged", "service/web unchanged"]
    assert stored(cli) == before

    # A change of the placement alone is a change.
    write(folder, "web.yaml", placed("web", 4, {"computes": ["dc1", "dc2", "later"],
                                                "maxPerCompute": 3}))
    done = cli("diff", "-f", str(folder), expect=1)
    assert "+    maxPerCompute: 3" in done.stdout and "service/web" in done.stdout
    assert "service/web configured" in cli("apply", "-f", str(folder)).stdout
    assert cli.genisys.request("GET", "/service/web").json()["placement"] == {
        "computes": ["dc1", "dc2", "later"], "maxPerCompute": 3}
    # From a total to counts per compute, and the other way (an empty placement: Spread
    # over every compute, as genisys keeps it: no placement at all).
    write(folder, "web.yaml", service("web", {"dc1": 1}))
    write(folder, "map.yaml", placed("map", 2, {}))
    assert cli("apply", "-f", str(folder)).stdout.splitlines()[2:] == [
        "service/eu unchanged", "service/map configured", "service/web configured"]
    web = cli.genisys.request("GET", "/service/web").json()
    assert web["replicas"] == {"dc1": 1} and "placement" not in web
    assert cli("diff", "-f", str(folder), expect=0).stdout == ""
    placed_as(cli.genisys, "map", 2)
    assert {(r["NAME"], r["TOTAL"], r["PLACEMENT"]) for r in cells(
        cli("get", "services").stdout)} == {("eu", "3", "Weighted: region=eu"),
                                            ("map", "2", "Spread: all"), ("web", "1", "-")}


def test_bad_placements_and_totals_are_refused_naming_the_field(start_genisys, tmp_path):
    cli = Cli(start_genisys("--max-replicas", "10"), tmp_path)
    folder = tmp_path / "m"
    write(folder, "a.yaml", placed("a", 6, {"computes": ["dc1"], "strategy": "Random"}))
    write(folder, "b.yaml", service("b", {"dc1": 2}, placement={"computes": ["dc1"]}))
    write(folder, "c.yaml", placed("c", 6, {"weights": {"dc1": 2}}))
    before = stored(cli)
    for command in ("apply", "diff", "plan"):
        done = cli(command, "-f", str(folder), expect={"plan": 1}.get(command, 2))
        assert done.stdout == ""
        problems = done.stderr.splitlines()
        assert problems[0] == "genisys: 3 problems in the manifests:"
        assert problems[1:] == [
            "  %s: document 1: spec.placement.strategy: must be 'Spread', 'Weighted', "
            "'Capacity' or 'Pack', got 'Random'" % (folder / "a.yaml"),
            "  %s: document 1: spec.placement: only a service with a total (replicas: N) has "
            "a placement; this one has counts per compute" % (folder / "b.yaml"),
            "  %s: document 1: spec.placement.weights: weights are only for strategy Weighted "
            "(this one is Spread)" % (folder / "c.yaml")]
    # A total is checked against the server's max_replicas, as a count per compute is.
    folder = tmp_path / "big"
    write(folder, "a.yaml", placed("a", 11, {"computes": ["dc1"]}))
    done = cli("apply", "-f", str(folder), expect=2)
    assert "%s: document 1: spec.replicas: must be at most 10 (max_replicas of this server), " \
        "got 11" % (folder / "a.yaml") in done.stderr
    assert stored(cli) == before


def test_steps_without_a_compute_act_on_the_total_and_rebalance(start_genisys,
                                                                start_connector, tmp_path):
    connectors = [start_connector(backend="simulated").url for _ in range(2)]
    cli = Cli(start_genisys("--poll-interval", "500ms"), tmp_path)
    write(tmp_path, "m/all.yaml", compute("c1", connectors[0]) + "---\n"
          + compute("c2", connectors[1]) + "---\n" + placed("web", 2, {"computes": ["c1", "c2"]})
          + "---\n" + service("map", {"c1": 1}))
    cli("apply", "-f", str(tmp_path / "m"))

    def web():
        return cli.genisys.request("GET", "/service/web").json()

    assert cli("scale", "service", "web", "--replicas", "4").stdout == \
        "service/web scaled: 4 desired in total\n"
    assert cli("upscale", "service", "web").stdout == "service/web scaled: 5 desired in total\n"
    assert cli("downscale", "service", "web").stdout == \
        "service/web scaled: 4 desired in total\n"
    assert web()["replicas"] == 4

    # The other form is refused with the flag to use.
    before = stored(cli)
    done = cli("scale", "service", "web", "--compute", "c1", "--replicas", "3", expect=1)
    assert "service 'web' is placed by genisys (a total of 4)" in done.stderr
    assert "(with genisys scale: leave out --compute)" in done.stderr
    done = cli("upscale", "service", "map", expect=1)
    assert "service 'map' has counts per compute" in done.stderr
    assert "(with genisys upscale: give --compute NAME)" in done.stderr
    done = cli("rebalance", "service", "map", expect=1)
    assert "service 'map' has counts per compute, which genisys does not move" in done.stderr

    # Dry runs: what would change, and nothing written.
    placed_as(cli.genisys, "web", 4)
    done = cli("scale", "service", "web", "--replicas", "6", "--dry-run")
    lines = done.stdout.splitlines()
    assert lines[0] == "service/web scaled: 6 desired in total (dry run)"
    assert {(r["SERVICE"], r["ACTION"], r["TO"], r["REASON"]) for r in cells(
        "\n".join(line[2:] for line in lines[1:]))} == {("web", "scale up", "3", "placement")}
    assert cli("upscale", "service", "map", "--compute", "c2", "--dry-run").stdout.startswith(
        "service/map scaled: 1 desired on c2 (dry run)\n")
    assert cli("rebalance", "service", "web", "--dry-run").stdout == \
        "service/web rebalance requested: assignment c1=2 c2=2, shares c1=2 c2=2 (dry run)\n"
    assert stored(cli) == before
    assert web().get("rebalance", 0) == 0

    assert cli("rebalance", "service", "web", process=True).stdout == \
        "service/web rebalance requested: assignment c1=2 c2=2, shares c1=2 c2=2\n"
    assert web()["rebalance"] == 1
