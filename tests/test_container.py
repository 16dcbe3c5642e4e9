"""The container image and the Kubernetes sidecar deployment, as far as they can
be tested without a Docker engine or a cluster: the command the image runs, with
the environment it sets, really serves; its health check passes; and the Pod's
settings, probes and ConfigMap are ones genisys understands."""

import json
import os
import shlex
import signal
import subprocess
import sys

import yaml

from genisys.config import OPTIONS
from genisys.manifests.load import load
from tests.support import ROOT, GenisysProcess, run_genisys, wait_for

DEPLOYMENT = os.path.join(ROOT, "deploy", "kubernetes", "genisys-sidecar.yaml")


def dockerfile():
    """(instruction, argument) pairs of the Dockerfile, continuation lines joined."""
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        text = f.read().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def image_environment():
    env = {}
    for instruction, argument in dockerfile():
        if instruction == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(argument))
    return env


def test_the_image_is_slim_non_root_and_runs_genisys_in_exec_form():
    instructions = dockerfile()
    assert instructions[0][0] == "FROM" and instructions[0][1].endswith("-slim")
    [user] = [a for i, a in instructions if i == "USER"]
    assert user.isdigit() and int(user) != 0
    [entrypoint] = [a for i, a in instructions if i == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["genisys", "serve"]  # exec form: SIGTERM reaches it
    [healthcheck] = [a for i, a in instructions if i == "HEALTHCHECK"]
    assert "/healthz" in healthcheck and "CMD [" in healthcheck
    [install] = [a for i, a in instructions if i == "RUN" and "pip install" in a]
    assert install.split("&&")[0].split() == ["pip", "install", "."]  # no extras: no Docker SDK
    env = image_environment()
    assert env["GENISYS_BIND"] == "0.0.0.0"
    known = {o.env for o in OPTIONS}
    assert {k for k in env if k.startswith("GENISYS_")} <= known


def healthcheck_command():
    [healthcheck] = [a for i, a in dockerfile() if i == "HEALTHCHECK"]
    command = json.loads(healthcheck.split("CMD", 1)[1])
    return [sys.executable if command[0] == "python" else command[0]] + command[1:]


def sidecar_objects():
    with open(DEPLOYMENT) as f:
        return {doc["kind"]: doc for doc in yaml.safe_load_all(f)}


def genisys_container():
    pod = sidecar_objects()["Deployment"]["spec"]["template"]["spec"]
    [container] = [c for c in pod["containers"] if c["name"] == "genisys"]
    return pod, container


def test_the_image_command_with_its_environment_serves_and_passes_its_healthcheck(tmp_path):
    env = dict(image_environment(), GENISYS_STORE="sqlite:///%s/genisys.db" % tmp_path)
    # Bound to every address, it refuses to start without a token...
    done = run_genisys(["serve", "--port", "0"], cwd=str(tmp_path), env=env)
    assert done.returncode == 2 and "refusing to listen on 0.0.0.0 without API tokens" \
        in done.stderr
    # ... and with one it serves, the ConfigMap's manifests mounted as kubelet mounts them.
    folder = tmp_path / "manifests"
    version = folder / "..2026_11_28_00_00_00.1"
    version.mkdir(parents=True)
    for name, text in sidecar_objects()["ConfigMap"]["data"].items():
        (version / name).write_text(text)
        os.symlink(os.path.join("..data", name), str(folder / name))
    os.symlink(version.name, str(folder / "..data"))
    env.update(GENISYS_TOKEN="container-test-token-1234", GENISYS_MANIFESTS=str(folder),
               CONNECTOR_A_TOKEN="connector-a-secret-token")
    genisys = GenisysProcess(str(tmp_path), ["serve"], env=env).start()
    try:
        health = subprocess.run(healthcheck_command(), env=dict(os.environ,
                                GENISYS_PORT=str(genisys.port)), timeout=30)
        assert health.returncode == 0
        ready = wait_for(lambda: genisys.request("GET", "/readyz").status_code == 200,
                         timeout=30, message="the sidecar to apply the ConfigMap's manifests")
        assert ready
        services = genisys.request("GET", "/service", headers={
            "Authorization": "Bearer container-test-token-1234"}).json()
        assert services["web"]["replicas"] == {"docker-a": 3}
        assert genisys.stop(signal.SIGTERM) == 0
    finally:
        genisys.kill()


def test_the_kubernetes_sidecar_uses_settings_probes_and_manifests_genisys_knows(tmp_path):
    pod, container = genisys_container()
    env = {e["name"]: e for e in container["env"]}
    known = {o.env for o in OPTIONS} | {"GENISYS_TOKEN"}
    assert {n for n in env if n.startswith("GENISYS_")} <= known
    assert "secretKeyRef" in env["GENISYS_TOKEN"]["valueFrom"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["manifests"] == env["GENISYS_MANIFESTS"]["value"]
    assert volumes["manifests"]["configMap"]["name"] == \
        sidecar_objects()["ConfigMap"]["metadata"]["name"]
    assert env["GENISYS_STORE"]["value"] == "sqlite:///%s/genisys.db" % mounts["state"]
    # The ConfigMap holds valid manifests, and their secrets come from the environment.
    for name, text in sidecar_objects()["ConfigMap"]["data"].items():
        (tmp_path / name).write_text(text)
    manifests = load([str(tmp_path)], known_computes=[])
    for manifest in manifests:
        variable = manifest.spec.get("tokenFromEnv")
        assert variable is None or "secretKeyRef" in env[variable]["valueFrom"]
