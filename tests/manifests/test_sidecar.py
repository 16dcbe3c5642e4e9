"""Sidecar mode: genisys serve --manifests DIR keeps the store in step with a
folder, including the atomic symlink swap of a mounted Kubernetes ConfigMap."""

import os
import textwrap

import pytest

from tests.support import intents_dump, run_genisys, wait_for

TOKEN = "sidecar-test-admin-token"


def compute_doc(connector):
    return textwrap.dedent("""\
        apiVersion: genisys/v1
        kind: Compute
        metadata: {name: c1}
        spec: {connector: "%s"}
        """ % connector)


def service_doc(name, count):
    return textwrap.dedent("""\
        apiVersion: genisys/v1
        kind: Service
        metadata: {name: %s}
        spec:
          replicas: {c1: %d}
        """ % (name, count))


def write(path, text):
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, str(path))


class Sidecar:
    def __init__(self, genisys):
        self.genisys = genisys

    def get(self, path):
        return self.genisys.request("GET", path, headers={"Authorization": "Bearer " + TOKEN})

    def replicas(self):
        services = self.get("/service").json()
        return {name: s["replicas"].get("c1") for name, s in services.items()
                if not s["deleting"]}

    def readiness(self):
        r = self.genisys.request("GET", "/readyz")
        return r.status_code, r.json()["checks"]["manifests"]

    def follows(self, expected, message):
        wait_for(lambda: self.replicas() == expected, timeout=30,
                 message="%s: %s (have %s)" % (message, expected, self.replicas()))
        wait_for(lambda: self.readiness()[1]["state"] == "Synced", timeout=30,
                 message="the sidecar to report Synced")


@pytest.fixture
def connector(start_connector):
    return start_connector(backend="simulated")


def start(start_genisys, folder):
    genisys = start_genisys("--manifests", str(folder), "--manifests-interval", "100ms",
                            "--poll-interval", "500ms", env={"GENISYS_TOKEN": TOKEN})
    return Sidecar(genisys)


def start_with_web(start_genisys, connector, tmp_path):
    """A sidecar on a folder of the compute c1 and the service web (2 on c1), applied."""
    folder = tmp_path / "manifests"
    folder.mkdir()
    write(folder / "compute.yaml", compute_doc(connector.url))
    write(folder / "web.yaml", service_doc("web", 2))
    sidecar = start(start_genisys, folder)
    sidecar.follows({"web": 2}, "applied at start")
    return sidecar, folder


def test_the_store_follows_edits_additions_and_removals(start_genisys, connector, tmp_path):
    sidecar, folder = start_with_web(start_genisys, connector, tmp_path)
    status, sync = sidecar.readiness()
    assert status == 200 and sync["objects"] == 2 and sync["folder"] == str(folder)

    write(folder / "web.yaml", service_doc("web", 5))
    sidecar.follows({"web": 5}, "an edit")
    (folder / "more").mkdir()
    write(folder / "more" / "api.yml", service_doc("api", 1))
    sidecar.follows({"web": 5, "api": 1}, "a new file in a subfolder")
    os.remove(str(folder / "web.yaml"))
    sidecar.follows({"api": 1}, "a removed file: pruned")
    wait_for(lambda: sidecar.get("/service/web").status_code == 404, timeout=30,
             message="the pruned service to be removed once scaled to 0")

    # An object made through the API is never pruned by the sidecar.
    r = sidecar.genisys.request("POST", "/service/manual/upscale", json={"compute": "c1"},
                                headers={"Authorization": "Bearer " + TOKEN})
    assert r.status_code == 202
    write(folder / "more" / "api.yml", service_doc("api", 2))
    sidecar.follows({"api": 2, "manual": 1}, "another edit")

    # Everything the sidecar did is in the audit trail, under its own name.
    audit = sidecar.get("/audit?limit=100").json()
    assert {e["who"] for e in audit if e["path"].startswith("/service/web")} == {"sidecar"}
    metrics = sidecar.get("/metrics").text
    assert "genisys_manifests_in_sync 1.0" in metrics
    assert 'genisys_manifest_syncs_total{result="success"}' in metrics


def test_a_broken_manifest_keeps_the_last_good_state_and_shows_in_readyz(
        start_genisys, connector, tmp_path):
    sidecar, folder = start_with_web(start_genisys, connector, tmp_path)

    # One good change and one broken file together: nothing of it is applied.
    write(folder / "web.yaml", service_doc("web", 3))
    write(folder / "broken.yaml", service_doc("api", 1).replace("replicas: {c1: 1}",
                                                                "replicas: {c1: -1}"))

    def failing():
        status, sync = sidecar.readiness()
        return status == 200 and sync["state"] == "Error" and sync
    sync = wait_for(failing, timeout=30, message="the sidecar to report the broken file")
    assert "broken.yaml: document 1: spec.replicas.c1: must be at least 0" in sync["lastError"]
    assert sidecar.replicas() == {"web": 2}
    assert "genisys_manifests_in_sync 0.0" in sidecar.get("/metrics").text

    os.remove(str(folder / "broken.yaml"))
    sidecar.follows({"web": 3}, "the fixed folder")
    assert "lastError" not in sidecar.readiness()[1]


def test_a_configmap_symlink_swap_is_followed(start_genisys, connector, tmp_path):
    """The layout kubelet makes: name -> ..data/name, ..data -> ..<timestamp>/, and an
    update swaps ..data atomically (a new folder, a new link renamed over it)."""
    folder = tmp_path / "configmap"
    folder.mkdir()

    def publish(version, files):
        target = folder / ("..2026_11_28_00_00_%02d.%d" % (version, version))
        target.mkdir()
        for name, text in files.items():
            write(target / name, text)
        os.symlink(target.name, str(folder / "..data_tmp"))
        os.replace(str(folder / "..data_tmp"), str(folder / "..data"))
        for name in files:
            if not os.path.islink(str(folder / name)):
                os.symlink(os.path.join("..data", name), str(folder / name))

    publish(1, {"compute.yaml": compute_doc(connector.url), "web.yaml": service_doc("web", 1)})
    sidecar = start(start_genisys, folder)
    sidecar.follows({"web": 1}, "the first version")
    publish(2, {"compute.yaml": compute_doc(connector.url), "web.yaml": service_doc("web", 4)})
    sidecar.follows({"web": 4}, "the swapped version")
    assert sidecar.readiness()[1]["objects"] == 2  # the hidden version folders aren't read


def test_not_ready_until_the_folder_was_applied_once(start_genisys, connector, tmp_path):
    folder = tmp_path / "manifests"
    folder.mkdir()
    write(folder / "web.yaml", service_doc("web", 1))  # its compute is not defined yet
    sidecar = start(start_genisys, folder)

    def not_ready():
        status, sync = sidecar.readiness()
        return status == 503 and sync["state"] == "Error" and sync
    sync = wait_for(not_ready, timeout=30, message="the sidecar to report not ready")
    assert "compute 'c1' is not defined" in sync["lastError"]
    # Nothing of the folder is applied while part of it cannot be: no compute, no service.
    assert intents_dump(os.path.join(str(tmp_path), "genisys.db")) == ""
    write(folder / "compute.yaml", compute_doc(connector.url))
    sidecar.follows({"web": 1}, "the completed folder")
    assert sidecar.readiness()[0] == 200


def test_a_missing_folder_is_a_configuration_error(tmp_path):
    done = run_genisys(["serve", "--manifests", str(tmp_path / "nope"), "--port", "0"],
                       cwd=str(tmp_path))
    assert done.returncode == 2
    assert "genisys.manifests: %s is not a folder" % (tmp_path / "nope") in done.stderr
