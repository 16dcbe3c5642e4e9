"""The code stays clean, typed and its layers honest (the settings of ruff, mypy and
import-linter are in pyproject.toml)."""

import os
import subprocess
import sys

from tests.support import ROOT

BIN = os.path.dirname(sys.executable)


def run(tool, *args, timeout=120):
    return subprocess.run([os.path.join(BIN, tool), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_ruff_finds_nothing():
    result = run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_layers_are_kept():
    result = run("lint-imports", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing():
    # The whole package; the modules of pyproject.toml's strict list type every function.
    # Its cache (.mypy_cache) makes a second run take seconds, not a minute.
    result = run("mypy", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Success: no issues found"), result.stdout
