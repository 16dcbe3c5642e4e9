"""`genisys connector` as a user runs it: flags, the --services file, start-up failures."""

import os
import signal
import socket
import subprocess
import sys

import pytest

from genisys import cli
from genisys.connector.main import ConnectorServerSettings, ProcessSettings, SimulatedSettings
from tests.support import ROOT, free_port, run_genisys


def one_line_error(result):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_help_lists_every_flag(tmp_path):
    result = run_genisys(["connector", "--help"], cwd=str(tmp_path))
    assert result.returncode == 0
    for flag in ["--backend", "--bind", "--port", "--services", "--state-dir", "--grace-period",
                 "--latency", "--failure-rate", "--start-delay", "--log-level", "--no-batch"]:
        assert flag in result.stdout, flag


@pytest.mark.parametrize("args,line", [
    (["--failure-rate", "2", "--backend", "simulated"],
     "genisys: connector: --failure-rate: must be from 0 to 1, got 2"),
    (["--failure-rate", "often", "--backend", "simulated"],
     "genisys: connector: --failure-rate: must be a number from 0 to 1, got 'often'"),
    (["--backend", "cloud"], "genisys: connector: --backend: must be one of process, simulated"),
    (["--port", "70000"], "genisys: connector: --port: must be from 0 to 65535, got 70000"),
    (["--grace-period", "0"], "genisys: connector: --grace-period: must be more than 0"),
    (["--grace-period", "soon"], "genisys: connector: --grace-period: 'soon' is not a duration"),
    (["--backend", "simulated", "--latency=-1s"], "genisys: connector: --latency: '-1s'"),
    (["--backend", "simulated", "--start-delay", "2d"], "genisys: connector: --start-delay:"),
    (["--latency", "1s"], "genisys: connector: --latency: applies only to --backend simulated"),
    (["--backend", "simulated", "--state-dir", "x"],
     "genisys: connector: --state-dir: applies only to --backend process"),
    (["--log-level", "LOUD"], "genisys: connector: --log-level: must be one of DEBUG"),
    (["--bind", "not a host"], "genisys: connector: --bind: 'not a host' is not an IP address"),
    (["--services", " "], "genisys: connector: --services: must be a file path"),
])
def test_bad_flag_exits_2_naming_it(tmp_path, args, line):
    result = run_genisys(["connector"] + args, cwd=str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert one_line_error(result).startswith(line)
    assert not (tmp_path / "var").exists()  # nothing started, nothing created


def test_unknown_flag_is_a_usage_error(tmp_path):
    result = run_genisys(["connector", "--replicas", "3"], cwd=str(tmp_path))
    assert result.returncode == 2 and "unrecognized arguments: --replicas" in result.stderr


@pytest.mark.parametrize("text,words", [
    ("- name: web\n  command: sleep 1\n- name: api\n",
     ["services.yml: entry [1]: command: is required"]),
    ("web:\n  command: sleep 1\n  colour: blue\n", ["services.yml: entry web: colour"]),
    ("web: {command: [\n", ["services.yml is not valid YAML"]),
])
def test_bad_services_file_exits_2_before_listening(tmp_path, text, words):
    (tmp_path / "services.yml").write_text(text)
    port = free_port()
    result = run_genisys(["connector", "--services", "services.yml", "--port", str(port)],
                         cwd=str(tmp_path))
    assert result.returncode == 2, result.stderr
    line = one_line_error(result)
    assert line.startswith("genisys: connector: --services: ")
    for word in words:
        assert word in line, line
    assert "listening" not in result.stderr
    assert not (tmp_path / "var").exists()  # the state directory was not even touched


def test_missing_services_file_exits_2(tmp_path):
    result = run_genisys(["connector", "--services", "nope.yml", "--port", "0"],
                         cwd=str(tmp_path))
    assert result.returncode == 2
    assert "cannot read nope.yml: No such file or directory" in one_line_error(result)


#: Runs the genisys command in a Python where the Docker SDK is absent: None in
#: sys.modules is how Python marks a module that cannot be imported.
WITHOUT_DOCKER_SDK = ("import sys; sys.modules['docker'] = None; "
                      "from genisys.cli import main; sys.exit(main(sys.argv[1:]))")


def run_without_docker_sdk(args, *, cwd):
    return subprocess.run([sys.executable, "-c", WITHOUT_DOCKER_SDK] + args, cwd=cwd,
                          env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_docker_backend_without_the_sdk_says_to_install_the_extra(tmp_path):
    result = run_without_docker_sdk(["connector", "--backend", "docker", "--port", "0"],
                                    cwd=str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert one_line_error(result) == (
        "genisys: connector: --backend: the docker backend needs the Docker SDK, which is "
        "not installed: pip install 'genisys[docker]'")
    assert "listening" not in result.stderr
    assert not (tmp_path / "var").exists()


def test_the_controller_and_other_backends_run_without_the_docker_sdk(tmp_path):
    for args in (["serve", "--help"], ["connector", "--help"]):
        result = run_without_docker_sdk(args, cwd=str(tmp_path))
        assert result.returncode == 0, result.stderr
    check = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['docker'] = None; "
         "import genisys.app, genisys.connector.main, genisys.commands"],
        cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
        text=True, timeout=60)
    assert check.returncode == 0, check.stderr


def test_port_in_use_exits_1_and_touches_nothing(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_genisys(["connector", "--port", str(port)], cwd=str(tmp_path))
    assert result.returncode == 1
    line = one_line_error(result)
    assert "cannot listen on 127.0.0.1:%d" % port in line and "address already in use" in line
    assert not (tmp_path / "var").exists()


def test_state_dir_in_use_by_another_connector_exits_1(start_connector, tmp_path):
    running = start_connector()
    result = run_genisys(["connector", "--port", "0", "--state-dir", running.state_dir],
                         cwd=str(tmp_path))
    assert result.returncode == 1
    line = one_line_error(result)
    assert "state directory %s is in use by another connector (pid %d)" % (
        running.state_dir, running.proc.pid) in line
    assert running.request("GET", "/healthz").status_code == 200  # and it was left alone


def test_unusable_state_dir_exits_1(tmp_path):
    (tmp_path / "afile").write_text("x")
    result = run_genisys(["connector", "--port", "0", "--state-dir", "afile/state"],
                         cwd=str(tmp_path))
    assert result.returncode == 1
    message = one_line_error(result)
    assert "cannot create the state directory" in message
    assert "afile/state: Not a directory" in message


def test_corrupt_state_file_exits_1_rather_than_orphan_its_processes(tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "state.json").write_text("{not json")
    result = run_genisys(["connector", "--port", "0", "--state-dir", str(state_dir)],
                         cwd=str(tmp_path))
    assert result.returncode == 1
    assert "cannot read the state file" in one_line_error(result)


def test_default_state_dir_and_port_flags(start_connector, tmp_path):
    """Defaults: ./var/connector in the working directory; SIGINT stops it like SIGTERM."""
    connector = start_connector("--state-dir", "var/connector", "--bind", "127.0.0.1")
    assert (tmp_path / "var" / "connector" / "lock").exists()
    assert connector.stop(signal.SIGINT) == 0
    assert "stopped" in connector.log()


def test_genisys_py_passes_commands_through(tmp_path):
    result = run_genisys(["connector", "--help"], cwd=str(tmp_path))
    assert result.returncode == 0 and "--failure-rate" in result.stdout
    result = run_genisys(["serve", "--help"], cwd=str(tmp_path))
    assert result.returncode == 0 and "--max-replicas" in result.stdout
    assert os.path.exists(os.path.join(ROOT, "genisys.py"))


def test_flags_become_settings():
    def settings(*args):
        return cli.connector_settings(cli.build_parser().parse_args(["connector", *args]))
    assert settings() == ConnectorServerSettings()
    assert settings().process == ProcessSettings(state_dir="./var/connector", grace_period=10.0)
    s = settings("--backend", "simulated", "--port", "0", "--latency", "0",
                 "--start-delay", "250ms", "--failure-rate", "0.25", "--log-level", "debug")
    assert (s.backend, s.port, s.log_level) == ("simulated", 0, "DEBUG")
    assert s.simulated == SimulatedSettings(latency=0.0, failure_rate=0.25, start_delay=0.25)
    s = settings("--state-dir", "/srv/c", "--grace-period", "2m", "--services", "s.yml")
    assert s.process == ProcessSettings(state_dir="/srv/c", grace_period=120.0)
    assert s.services_file == "s.yml"
