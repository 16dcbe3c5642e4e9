"""`genisys serve` / `python genisys.py` as a user runs them: real processes."""

import gc
import os
import socket
import subprocess
import sys

import pytest

from genisys.cli import GC_FIRST_THRESHOLD, tune_gc
from tests.support import ROOT, run_genisys


def one_line_error(result):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_help_documents_every_setting(tmp_path):
    result = run_genisys(["--help"], cwd=str(tmp_path))
    assert result.returncode == 0
    for words in ["--bind", "--port", "--compute-file", "--store", "--max-replicas",
                  "--poll-interval", "--connector-timeout", "--config", "GENISYS_PORT",
                  "connector.poll_interval", "genisys.yml < GENISYS_* environment < flags"]:
        assert words in result.stdout, words


def test_console_script_runs_the_same_cli(tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "genisys")
    result = subprocess.run([script, "serve", "--help"], capture_output=True, text=True,
                            cwd=str(tmp_path), timeout=30)
    assert result.returncode == 0 and "--max-replicas" in result.stdout
    result = subprocess.run([script], capture_output=True, text=True, cwd=str(tmp_path),
                            timeout=30)
    assert result.returncode == 2 and "COMMAND" in result.stderr


@pytest.mark.parametrize("args,env,words", [
    (["--port", "http"], {}, ["genisys: config: genisys.port", "--port"]),
    ([], {"GENISYS_POLL_INTERVAL": "soon"}, ["connector.poll_interval", "GENISYS_POLL_INTERVAL"]),
    (["--store", "redis://x"], {}, ["genisys.store", "unknown store scheme"]),
    (["--config", "nope.yml"], {}, ["config", "nope.yml", "does not exist"]),
])
def test_bad_configuration_exits_2_with_one_line(tmp_path, args, env, words):
    result = run_genisys(args, cwd=str(tmp_path), env=env)
    assert result.returncode == 2
    line = one_line_error(result)
    for word in words:
        assert word in line, line


def test_unknown_flag_is_a_usage_error(tmp_path):
    result = run_genisys(["--colour", "blue"], cwd=str(tmp_path))
    assert result.returncode == 2 and "unrecognized arguments: --colour" in result.stderr


def test_port_in_use_exits_1_and_says_so(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_genisys(["--port", str(port), "--store", "memory://"], cwd=str(tmp_path))
    assert result.returncode == 1
    assert "cannot listen on 127.0.0.1:%d" % port in result.stderr
    assert "address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_unusable_store_exits_1_and_says_so(tmp_path):
    (tmp_path / "afile").write_text("x")
    result = run_genisys(["--port", "0", "--store", "sqlite:///afile/genisys.db"],
                         cwd=str(tmp_path))
    assert result.returncode == 1
    line = one_line_error(result)
    assert "cannot open the store sqlite:///afile/genisys.db" in line


def test_settings_precedence_on_a_real_server(start_genisys, tmp_path):
    (tmp_path / "genisys.yml").write_text("genisys:\n  max_replicas: 5\n")
    server = start_genisys("--max-replicas", "3", env={"GENISYS_MAX_REPLICAS": "4"})
    server.request("POST", "/compute", json={"name": "c", "connector": "http://127.0.0.1:1"})
    r = server.request("POST", "/service/s/scale", json={"compute": "c", "number": 4})
    assert r.status_code == 400 and "at most 3" in r.json()["error"]["message"]
    assert server.request("POST", "/service/s/scale",
                          json={"compute": "c", "number": 3}).status_code == 202


def test_default_store_is_var_genisys_db_in_the_working_directory(start_genisys, tmp_path):
    server = start_genisys(store=False)
    assert "sqlite:///./var/genisys.db" in server.log()
    assert (tmp_path / "var" / "genisys.db").exists()


# -- computes.py -------------------------------------------------------------

SEED_COMPUTES = '''\
myCompute = {
\t"name": "myCompute",
\t"connector": "http://localhost:7051"
}

local = {"name": "local", "connector": "http://127.0.0.1:7051"}
'''


def test_computes_py_is_loaded_and_updates_the_store(start_genisys, tmp_path):
    (tmp_path / "computes.py").write_text(SEED_COMPUTES)
    server = start_genisys()
    assert server.request("GET", "/compute").json() == {
        "myCompute": {"name": "myCompute", "connector": "http://localhost:7051"},
        "local": {"name": "local", "connector": "http://127.0.0.1:7051"},
    }
    server.stop()
    (tmp_path / "computes.py").write_text(
        'local = {"name": "local", "connector": "http://127.0.0.1:7999"}\n')
    server = start_genisys()
    assert server.request("GET", "/compute/local").json()["connector"] == "http://127.0.0.1:7999"
    # Computes no longer in the file stay: the file adds and updates, it does not prune.
    assert server.request("GET", "/compute/myCompute").status_code == 200


@pytest.mark.parametrize("text,words", [
    ("a = {'name': 'a'}\n", ["computes.py:1", "connector", "is required"]),
    ("\n\nb = {'name': 'b', 'connector': 'ftp://x'}\n", ["computes.py:3", "http"]),
    ("c = {'name': 'c_1', 'connector': 'http://x'}\n", ["computes.py:1", "not a valid name"]),
    ("import os\n", ["computes.py:1", "only assignments", "Import"]),
    ("d = dict(name='d', connector='http://x')\n", ["computes.py:1", "literal"]),
    ("e = {\n", ["computes.py:1", "syntax"]),
    ("f = {'name': 'f', 'connector': 'http://x'}\ng = {'name': 'f', 'connector': 'http://y'}\n",
     ["computes.py:2", "already defined on line 1"]),
    ("h = ['name', 'h']\n", ["computes.py:1", "must be a JSON object"]),
])
def test_bad_computes_py_fails_start_up_with_file_and_line(tmp_path, text, words):
    (tmp_path / "computes.py").write_text(text)
    result = run_genisys(["--port", "0", "--store", "memory://"], cwd=str(tmp_path))
    assert result.returncode == 2, result.stderr
    line = one_line_error(result)
    for word in words:
        assert word in line, line


def test_computes_py_is_never_executed(tmp_path):
    marker = tmp_path / "executed"
    (tmp_path / "computes.py").write_text(
        "x = {'name': 'x', 'connector': 'http://x'}\n"
        "open(%r, 'w').write('pwned')\n" % str(marker))
    result = run_genisys(["--port", "0", "--store", "memory://"], cwd=str(tmp_path))
    assert result.returncode == 2 and "computes.py:2" in result.stderr
    assert not marker.exists()


def test_genisys_py_from_the_repository_root_serves(start_genisys, tmp_path):
    """`python genisys.py` with no arguments, as the seed says (store in a temp dir)."""
    server = start_genisys(env={"GENISYS_STORE": "memory://"}, store=False)
    assert server.request("GET", "/healthz").json() == {"status": "ok"}
    assert os.path.exists(os.path.join(ROOT, "genisys.py"))


def test_servers_collect_young_objects_less_often_and_keep_a_higher_threshold():
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        tune_gc()
        assert gc.get_threshold() == (GC_FIRST_THRESHOLD, 10, 10)
        gc.set_threshold(GC_FIRST_THRESHOLD * 2, 5, 7)
        tune_gc()  # a higher one, set by whoever embeds genisys, stays
        assert gc.get_threshold() == (GC_FIRST_THRESHOLD * 2, 5, 7)
    finally:
        gc.set_threshold(*saved)
