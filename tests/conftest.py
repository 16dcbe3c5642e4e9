"""Fixtures shared by every topic: real genisys processes and stores on every backend.

And the one rule about skips: a test that needs something of its environment (etcd,
a Docker engine, curl, the seed README) skips without it, saying how to get it, but
under CI (``CI`` set to anything but empty, 0, false, no or off) every skip is a
failure: CI must run them all, and a skip there is a test nobody ran.
"""

import os
import pathlib
import re
import uuid

import pytest

from genisys.api import make_app
from genisys.intents import Intents
from genisys.store import store_from_url
from tests.support import ConnectorProcess, GenisysProcess

#: Values of CI that mean "not under CI" (compared without regard to case or spaces).
_NOT_CI = {"", "0", "false", "no", "off"}


def under_ci(environ=os.environ):
    """True if ``environ`` says the tests run under CI (CI=true, 1, yes, ...)."""
    return environ.get("CI", "").strip().lower() not in _NOT_CI


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI, a skipped test (in its setup or its body) is reported failed, with
    the reason it gave. An expected failure (xfail) is left as it is."""
    report = (yield).get_result()
    if report.skipped and not hasattr(report, "wasxfail") and under_ci():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = ("skipped under CI=%s, where every test must run: %s"
                           % (os.environ["CI"], reason))


#: Store backends the contract and API tests run against (etcd joins later).
BACKENDS = ["memory", "sqlite"]


def store_url(backend, tmp_path):
    if backend == "memory":
        return "memory://"
    return "sqlite:///" + os.path.join(str(tmp_path), "genisys.db")


#: What no process a test starts may log, whatever the test: a background task that died
#: of an exception nobody expected (``genisys.tasks``), an error of asyncio's own (a task
#: destroyed while pending, an exception never retrieved, a session left unclosed), or a
#: traceback nothing caught.
_CRASH = re.compile(r"^.*(?:genisys\.tasks: task \S+ crashed|(?:ERROR|CRITICAL) asyncio: ).*$"
                    r"|^Traceback \(most recent call last\):$", re.M)


@pytest.fixture(autouse=True)
def no_crash_in_logs(request):
    """After the test, once its processes are stopped: the logs under its tmp_path
    tell of no crash (``_CRASH``). A race when a busy controller stops is seen here."""
    if "tmp_path" not in request.fixturenames:
        yield
        return
    # Asked for now, it is torn down after this fixture: after the test's processes stop.
    tmp_path = pathlib.Path(request.getfixturevalue("tmp_path"))
    yield
    crashes = []
    for log in sorted(tmp_path.rglob("*.log")):
        text = log.read_text(encoding="utf-8", errors="replace")
        crashes += ["%s: %s" % (log.name, line) for line in _CRASH.findall(text)]
    if crashes:
        pytest.fail("a process of this test logged a crash:\n" + "\n".join(crashes[:10]),
                    pytrace=False)


@pytest.fixture
def start_genisys(tmp_path):
    """Factory: start(args..., env=...) runs a real genisys on a free port.

    Every process it started is killed at the end of the test."""
    started = []

    def start(*args, env=None, store=True, name="genisys", workdir=None):
        args = list(args)
        if store is True:
            args = ["--store", "sqlite:///" + os.path.join(str(tmp_path), "genisys.db")] + args
        process = GenisysProcess(str(workdir or tmp_path), args, env=env,
                                 name="%s-%d" % (name, len(started)))
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.kill()


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def store(backend, tmp_path, io_loop):
    """An open store of each backend, closed after the test."""
    s = store_from_url(store_url(backend, tmp_path))
    io_loop.run_sync(s.open)
    yield s
    io_loop.run_sync(s.close)


@pytest.fixture
def max_replicas():
    return 1000


@pytest.fixture
def intents(store, max_replicas):
    return Intents(store, max_replicas=max_replicas)


@pytest.fixture
def app(intents):
    """The API over each backend, served by pytest-tornado's http_server on a free port."""
    return make_app(intents)


@pytest.fixture
def start_connector(tmp_path):
    """Factory: ``start_connector(*args, backend="process", state_dir=None, name="connector",
    env=None)`` runs a real ``genisys connector --backend BACKEND ARGS... --port 0`` and
    returns its ``tests.support.ConnectorProcess`` (``.url``, ``.request()``, ``.stop(sig)``,
    ``.kill()``, ``.log()``, ``.state_dir``, ``.running_pids(service)``).

    With the process, docker and aws backends, each connector gets a fresh ``--state-dir`` under
    tmp_path unless ``state_dir`` is given (give the previous one's ``.state_dir`` to restart "the
    same" connector) or ``args`` has ``--state-dir``.

    At the end of the test every connector it started is SIGKILLed, and so is every
    process any of them started: all carry a marker in their environment, and the
    process groups recorded in the state files are killed too."""
    marker = uuid.uuid4().hex
    started = []

    def start(*args, backend="process", state_dir=None, name="connector", env=None):
        args = ["--backend", backend] + list(args)
        if backend in ("process", "docker", "aws"):
            for i, arg in enumerate(args):
                if arg == "--state-dir" and i + 1 < len(args):
                    state_dir = tmp_path / args[i + 1]  # relative to the connector's cwd
                elif arg.startswith("--state-dir="):
                    state_dir = tmp_path / arg.split("=", 1)[1]
                else:
                    continue
                break
            else:
                state_dir = str(state_dir or tmp_path / ("%s-%d-state" % (name, len(started))))
                args += ["--state-dir", state_dir]
        process = ConnectorProcess(str(tmp_path), args, env=env,
                                   name="%s-%d" % (name, len(started)),
                                   state_dir=str(state_dir) if state_dir else None,
                                   marker=marker)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.cleanup()


@pytest.fixture
def lab(tmp_path, start_genisys, start_connector):
    """A real genisys and process connector, and a service "web" whose processes
    carry a marker (tests.e2e.lab.Lab)."""
    from tests.e2e.lab import Lab
    return Lab(tmp_path, start_genisys, start_connector)
