"""The rules of tests/conftest.py for every test: under CI, a skipped test is a failure,
whatever truthy value CI has (outside CI a skip stays a skip); and a test whose processes
logged a crash fails, whatever it asserted."""

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import under_ci

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Every way a test skips: in its body, by a mark, in a fixture; and what must not change.
TINY_TESTS = '''
import pytest

@pytest.fixture
def engine():
    pytest.skip("no engine here")

def test_body_skips():
    pytest.skip("etcd is not installed")

@pytest.mark.skipif(True, reason="curl is not installed")
def test_marked_skip():
    pass

def test_fixture_skips(engine):
    pass

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False

def test_passes():
    pass
'''


def run_tiny_suite(tmp_path, ci, tests=TINY_TESTS, basetemp=None):
    """pytest over ``tests`` with the rules of tests/conftest.py loaded (as a plugin)
    and CI set to ``ci`` (None: unset), its tests' tmp_path under ``basetemp`` (None:
    pytest's default); (exit status, output)."""
    (tmp_path / "test_tiny.py").write_text(tests)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    # Only the rule is loaded: the suite's other plugins take seconds to import.
    env = dict(os.environ, PYTHONPATH=ROOT, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    env.pop("CI", None)
    if ci is not None:
        env["CI"] = ci
    argv = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
            "-p", "no:warnings", "-rfEs", "--rootdir", str(tmp_path),
            "-c", str(tmp_path / "pytest.ini"), str(tmp_path / "test_tiny.py")]
    if basetemp is not None:
        argv.insert(-1, "--basetemp=%s" % basetemp)
    done = subprocess.run(argv, cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=120)
    return done.returncode, done.stdout + done.stderr


def summary(output):
    return re.findall(r"^=+ (.*) in [\d.]+s", output, re.MULTILINE)[-1]


@pytest.mark.parametrize("ci", ["true", "1", "yes", " On "])
def test_under_ci_every_skip_is_a_failure(tmp_path, ci):
    status, output = run_tiny_suite(tmp_path, ci)
    assert status == 1, output
    # A skip in the setup (a mark, a fixture) is a failed setup: pytest calls it an error.
    assert summary(output) == "1 failed, 1 passed, 1 xfailed, 2 errors", output
    for outcome, name, reason in (("FAILED", "test_body_skips", "etcd is not installed"),
                                  ("ERROR", "test_marked_skip", "curl is not installed"),
                                  ("ERROR", "test_fixture_skips", "no engine here")):
        assert re.search(r"%s test_tiny.py::%s - skipped under CI=%s, where every test "
                         r"must run: Skipped: %s" % (outcome, name, re.escape(ci), reason),
                         output), output


@pytest.mark.parametrize("ci", [None, "0", "false", "No"])
def test_outside_ci_a_skip_stays_a_skip(tmp_path, ci):
    status, output = run_tiny_suite(tmp_path, ci)
    assert status == 0, output
    assert summary(output) == "1 passed, 3 skipped, 1 xfailed", output


def test_which_values_mean_ci():
    for value in ("true", "True", "1", "yes", "on", "github-actions"):
        assert under_ci({"CI": value}), value
    for environ in ({}, {"CI": ""}, {"CI": "0"}, {"CI": "false"}, {"CI": " FALSE "},
                    {"CI": "no"}, {"CI": "off"}):
        assert not under_ci(environ), environ


#: Logs a test's processes may leave in its tmp_path: a crash in three forms, and faults
#: that are not crashes (a connector that cannot start a command is logged as ERROR).
CRASH_TESTS = '''
def test_a_task_crashed(tmp_path):
    (tmp_path / "genisys-0.log").write_text(
        "2026-11-30 10:00:00,000 INFO genisys: listening\\n"
        "2026-11-30 10:00:01,000 ERROR genisys.tasks: task worker-3 crashed: ValueError()\\n")

def test_a_traceback_nothing_caught(tmp_path):
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "connector.log").write_text(
        "Traceback (most recent call last):\\n  File \\"x.py\\", line 1\\nValueError\\n")

def test_a_session_left_unclosed(tmp_path):
    (tmp_path / "genisys-1.log").write_text(
        "2026-11-30 10:00:02,000 INFO genisys: stopped\\n"
        "2026-11-30 10:00:02,100 ERROR asyncio: Unclosed client session\\n")

def test_an_error_that_is_no_crash(tmp_path):
    (tmp_path / "connector.log").write_text(
        "2026-11-30 10:00:00,000 ERROR genisys.connector.process: cannot start web\\n")

def test_without_tmp_path():
    pass
'''


def test_a_test_whose_processes_logged_a_crash_fails(tmp_path, tmp_path_factory):
    # The tiny tests' logs are kept out of this test's tmp_path, which the rule reads too.
    status, output = run_tiny_suite(tmp_path, None, tests=CRASH_TESTS,
                                    basetemp=tmp_path_factory.mktemp("crash-logs"))
    assert status == 1, output
    # The test passed, then failed at its teardown: pytest calls that an error.
    assert summary(output) == "5 passed, 3 errors", output
    assert "genisys-0.log: 2026-11-30 10:00:01,000 ERROR genisys.tasks: task worker-3 " \
        "crashed: ValueError()" in output, output
    assert "connector.log: Traceback (most recent call last):" in output, output
    assert "genisys-1.log: 2026-11-30 10:00:02,100 ERROR asyncio: Unclosed client " \
        "session" in output, output
    for name in ("test_a_task_crashed", "test_a_traceback_nothing_caught",
                 "test_a_session_left_unclosed"):
        assert re.search(r"ERROR test_tiny.py::%s - Failed: a process of th" % name,
                         output), output
