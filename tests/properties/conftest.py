"""Fixtures of the property tests."""

import pytest


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A directory for the files a module's properties write, one per module.

    Module-scoped on purpose: Hypothesis runs a test body many times within one
    function-scoped fixture (and warns about it), while every example here simply
    overwrites its file, so sharing one directory is safe."""
    return tmp_path_factory.mktemp("properties")


@pytest.fixture(scope="module", autouse=True)
def hypothesis_prints_examples():
    """Let Hypothesis print the failing example again while these tests run.

    schemathesis' pytest plugin (tests/api) swaps Hypothesis' example printer for one
    that prints nothing, a speed-up for its own tests: a failure here would then read
    ``value=,`` instead of the shrunk input, which is the whole point of a property
    test. The original printer goes back in for this directory only."""
    from hypothesis import core
    from hypothesis.vendor import pretty

    installed = getattr(core, "RepresentationPrinter", None)
    if installed is None or installed is pretty.RepresentationPrinter:
        yield
        return
    core.RepresentationPrinter = pretty.RepresentationPrinter
    try:
        yield
    finally:
        core.RepresentationPrinter = installed
