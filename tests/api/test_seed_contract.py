"""The seed README is a contract: its httpie examples work exactly as written.

Each command is replayed with the real httpie CLI against a real genisys, changing
only the port (``:7001`` -> ``:<port>``) and adding ``--ignore-stdin`` (stdin is not
a terminal here), ``--print=hb`` (to see the status line) and ``--check-status``.
The same requests are replayed with curl, and the seed's computes.py format is loaded.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from tests.support import ROOT

HTTPIE = os.path.join(os.path.dirname(sys.executable), "http")

#: The seed README (in shared/ beside the repository) and its examples, verbatim and in order.
SEED_README = os.environ.get("GENISYS_SEED_README",
                             os.path.join(ROOT, "..", "shared", "seed", "genisys-README.md"))
SEED_CREATE = 'http POST :7001/compute name="localdc" connector="http://localhost:7051"'
SEED_PUT = 'http PUT :7001/compute/local connector="http://localhost:7052"'
SEED_UPSCALE = 'http POST :7001/service/myService/upscale compute="local"'
SEED_DOWNSCALE = 'http POST :7001/service/myService/downscale compute="local"'
SEED_COMMANDS = [SEED_CREATE, SEED_PUT, SEED_UPSCALE, SEED_DOWNSCALE]

#: The seed README's answer to GET /compute/localdc, as httpie prints it.
SEED_GET_OUTPUT = '{\n    "connector": "http://localhost:7051",\n    "name": "localdc"\n}'

#: The seed README's compute definition (tab-indented), as a computes.py.
SEED_COMPUTES_PY = ('myCompute = {\n'
                    '\t"name": "myCompute",\n'
                    '\t"connector": "http://localhost:7051"\n'
                    '}\n')

LOCALDC = {"connector": "http://localhost:7051", "name": "localdc"}


# -- running httpie and curl ----------------------------------------------------------------


def run_httpie(genisys, command, *options):
    """Run a README command line with httpie; returns (exit status, HTTP status, body text)."""
    argv = shlex.split(command.replace(":7001", ":%d" % genisys.port))
    assert argv[0] == "http", command
    argv = [HTTPIE, "--ignore-stdin", "--print=hb", "--check-status"] + list(options) + argv[1:]
    env = dict(os.environ, HTTPIE_CONFIG_DIR=os.path.join(genisys.workdir, ".httpie"))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env,
                          stdin=subprocess.DEVNULL)
    out = done.stdout.replace("\r\n", "\n")
    head, _, body = out.partition("\n\n")
    match = re.match(r"HTTP/1\.1 (\d{3}) ", head)
    assert match, "no status line from %s:\n%s%s" % (argv, done.stdout, done.stderr)
    return done.returncode, int(match.group(1)), body.strip()


def httpie_json(genisys, command, status):
    rc, got, body = run_httpie(genisys, command)
    assert got == status, "%s -> %d %s" % (command, got, body)
    assert rc == 0, "%s: httpie exited %d" % (command, rc)
    return json.loads(body)


def run_curl(genisys, command):
    """Run a documented curl command line; returns (HTTP status, body text)."""
    argv = shlex.split(command.replace(":7001", ":%d" % genisys.port))
    assert argv[0] == "curl", command
    argv += ["-w", "\n%{http_code}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, "%s: curl exited %d: %s" % (command, done.returncode, done.stderr)
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def curl_json(genisys, command, status):
    got, body = run_curl(genisys, command)
    assert got == status, "%s -> %d %s" % (command, got, body)
    return json.loads(body)


# -- the README itself ----------------------------------------------------------------------


def test_seed_commands_are_the_readme_examples():
    """The commands replayed below are the README's, character for character."""
    if not os.path.exists(SEED_README):
        pytest.skip("seed README not available at %s" % SEED_README)
    with open(SEED_README, encoding="utf-8") as f:
        readme = f.read()
    examples = [line[2:] for line in readme.splitlines() if line.startswith("$ http ")]
    assert examples == SEED_COMMANDS
    assert SEED_GET_OUTPUT in readme
    assert SEED_COMPUTES_PY.rstrip("\n") in readme


# -- httpie, as written ------------------------------------------------------------------------


def test_httpie_seed_examples_as_written(start_genisys):
    genisys = start_genisys()

    # POST /compute
    assert httpie_json(genisys, SEED_CREATE, 201) == LOCALDC

    # GET /compute/localdc: exactly the README's body, and exactly its httpie rendering.
    assert httpie_json(genisys, "http :7001/compute/localdc", 200) == LOCALDC
    rc, status, body = run_httpie(genisys, "http :7001/compute/localdc", "--pretty=format")
    assert (rc, status) == (0, 200)
    assert body == SEED_GET_OUTPUT

    # PUT /compute/local: creates it the first time...
    assert httpie_json(genisys, SEED_PUT, 201) == {"connector": "http://localhost:7052",
                                                   "name": "local"}
    assert httpie_json(genisys, "http :7001/compute/local", 200) == {
        "connector": "http://localhost:7052", "name": "local"}
    # ...then updates it: another URL, then the README's command again.
    assert httpie_json(genisys, 'http PUT :7001/compute/local connector="http://localhost:7053"',
                       200) == {"connector": "http://localhost:7053", "name": "local"}
    assert httpie_json(genisys, "http :7001/compute/local", 200) == {
        "connector": "http://localhost:7053", "name": "local"}
    assert httpie_json(genisys, SEED_PUT, 200) == {"connector": "http://localhost:7052",
                                                   "name": "local"}
    assert httpie_json(genisys, "http :7001/compute/local", 200) == {
        "connector": "http://localhost:7052", "name": "local"}
    # The other compute is untouched.
    assert httpie_json(genisys, "http :7001/compute/localdc", 200) == LOCALDC

    # POST /service/myService/upscale, twice (upper case in the name is the seed's own).
    for expected in (1, 2):
        service = httpie_json(genisys, SEED_UPSCALE, 202)
        assert service["name"] == "myService"
        assert service["replicas"] == {"local": expected}
        assert service["deleting"] is False

    # POST /service/myService/downscale, back down to 0; once more is a 409.
    for expected in (1, 0):
        service = httpie_json(genisys, SEED_DOWNSCALE, 202)
        assert service["name"] == "myService"
        assert service["replicas"] == {"local": expected}
    rc, status, body = run_httpie(genisys, SEED_DOWNSCALE)
    assert status == 409, body
    assert rc == 4  # httpie --check-status: 4 for a 4xx
    assert json.loads(body)["error"]["reason"] == "Conflict"

    # The later releases' endpoints, the httpie way.
    assert httpie_json(genisys, "http :7001/compute", 200) == {
        "localdc": LOCALDC, "local": {"connector": "http://localhost:7052", "name": "local"}}
    service = httpie_json(genisys, 'http POST :7001/service/myService/scale number:=3 '
                                   'compute="local"', 202)
    assert service["replicas"] == {"local": 3}
    service = httpie_json(genisys, "http :7001/service/myService", 200)
    assert service["name"] == "myService"
    assert service["replicas"] == {"local": 3}


def test_httpie_errors_are_json(start_genisys):
    """The README's upscale against a compute that is not there yet: a JSON 404."""
    genisys = start_genisys()
    rc, status, body = run_httpie(genisys, SEED_UPSCALE)
    assert status == 404, body
    assert rc == 4
    error = json.loads(body)["error"]
    assert error["reason"] == "NotFound"
    assert "local" in error["message"]
    assert error["field"] == "compute"


# -- curl -------------------------------------------------------------------------------------


CURL_POST = "curl -sS -X POST -H 'Content-Type: application/json' -d '%s' http://127.0.0.1:7001%s"
CURL_PUT = "curl -sS -X PUT -H 'Content-Type: application/json' -d '%s' http://127.0.0.1:7001%s"
CURL_GET = "curl -sS http://127.0.0.1:7001%s"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_equivalents(start_genisys):
    genisys = start_genisys()
    local = {"connector": "http://localhost:7052", "name": "local"}

    assert curl_json(genisys, CURL_POST % (
        '{"name": "localdc", "connector": "http://localhost:7051"}', "/compute"), 201) == LOCALDC
    assert curl_json(genisys, CURL_GET % "/compute/localdc", 200) == LOCALDC

    assert curl_json(genisys, CURL_PUT % ('{"connector": "http://localhost:7052"}',
                                          "/compute/local"), 201) == local
    assert curl_json(genisys, CURL_PUT % ('{"connector": "http://localhost:7053"}',
                                          "/compute/local"), 200) == {
        "connector": "http://localhost:7053", "name": "local"}
    assert curl_json(genisys, CURL_GET % "/compute/local", 200) == {
        "connector": "http://localhost:7053", "name": "local"}
    assert curl_json(genisys, CURL_PUT % ('{"connector": "http://localhost:7052"}',
                                          "/compute/local"), 200) == local

    # GET /compute: an object keyed by compute name.
    assert curl_json(genisys, CURL_GET % "/compute", 200) == {"localdc": LOCALDC, "local": local}

    for expected in (1, 2):
        service = curl_json(genisys, CURL_POST % ('{"compute": "local"}',
                                                  "/service/myService/upscale"), 202)
        assert service["replicas"] == {"local": expected}
    service = curl_json(genisys, CURL_POST % ('{"compute": "local"}',
                                              "/service/myService/downscale"), 202)
    assert service["replicas"] == {"local": 1}

    # POST /service/<name>/scale {"number": N, "compute": C}: an absolute count.
    service = curl_json(genisys, CURL_POST % ('{"number": 5, "compute": "local"}',
                                              "/service/myService/scale"), 202)
    assert service["name"] == "myService"
    assert service["replicas"] == {"local": 5}
    service = curl_json(genisys, CURL_POST % ('{"number": 0, "compute": "localdc"}',
                                              "/service/myService/scale"), 202)
    assert service["replicas"] == {"local": 5, "localdc": 0}
    service = curl_json(genisys, CURL_GET % "/service/myService", 200)
    assert service["replicas"] == {"local": 5, "localdc": 0}

    # A new service through scale, and an error through curl: JSON as well.
    service = curl_json(genisys, CURL_POST % ('{"number": 2, "compute": "localdc"}',
                                              "/service/web/scale"), 202)
    assert service["name"] == "web" and service["replicas"] == {"localdc": 2}
    error = curl_json(genisys, CURL_POST % ('{"number": 2, "compute": "nosuch"}',
                                            "/service/web/scale"), 404)["error"]
    assert error["reason"] == "NotFound" and error["field"] == "compute"


# -- computes.py ------------------------------------------------------------------------------


def write_seed_computes_py(directory):
    directory.mkdir(exist_ok=True)
    path = directory / "computes.py"
    path.write_text(SEED_COMPUTES_PY, encoding="utf-8")
    return path


def test_seed_computes_py_with_compute_file_flag(start_genisys, tmp_path):
    path = write_seed_computes_py(tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"  # no ./computes.py there: only the flag can load it
    elsewhere.mkdir()
    genisys = start_genisys("--compute-file", str(path), workdir=elsewhere)
    r = genisys.request("GET", "/compute/myCompute")
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "myCompute", "connector": "http://localhost:7051"}
    assert genisys.request("GET", "/compute").json() == {
        "myCompute": {"name": "myCompute", "connector": "http://localhost:7051"}}
    # And the README's own upscale works against it.
    r = genisys.request("POST", "/service/myService/upscale", json={"compute": "myCompute"})
    assert r.status_code == 202, r.text
    assert r.json()["replicas"] == {"myCompute": 1}


def test_seed_computes_py_at_the_root_is_loaded_by_default(start_genisys, tmp_path):
    """The README: "an optional file called computes.py at the root of the project"."""
    project = tmp_path / "project"
    write_seed_computes_py(project)
    genisys = start_genisys(workdir=project)
    r = genisys.request("GET", "/compute/myCompute")
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "myCompute", "connector": "http://localhost:7051"}
