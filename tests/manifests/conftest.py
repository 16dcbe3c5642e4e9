"""Fixtures of the CLI tests."""

import pytest

from tests.manifests.test_cli import Cli


@pytest.fixture
def cli(start_genisys, tmp_path):
    """The real genisys command against a real genisys (polling every 500ms)."""
    return Cli(start_genisys("--poll-interval", "500ms"), tmp_path)
