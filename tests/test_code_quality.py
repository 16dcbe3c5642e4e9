"""The code stays clean and its layers stay honest (the settings of ruff and
import-linter are in pyproject.toml)."""

import os
import subprocess
import sys

from tests.support import ROOT

BIN = os.path.dirname(sys.executable)


def run(tool, *args):
    return subprocess.run([os.path.join(BIN, tool), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_ruff_finds_nothing():
    result = run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_layers_are_kept():
    result = run("lint-imports", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
