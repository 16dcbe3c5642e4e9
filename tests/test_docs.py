"""The documentation: the site builds strictly, its generated pages follow the code, and the
README stays a short front door that keeps the original project's examples."""

import html
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import types

import pytest

from genisys import config
from genisys.api import openapi
from tests.api.test_seed_contract import SEED_COMMANDS, SEED_COMPUTES_PY, SEED_GET_OUTPUT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")


def build(root, out):
    """``mkdocs build --strict`` of the site at ``root`` into ``out``."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=root, capture_output=True, text=True,
        env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built once into a temporary folder."""
    out = tmp_path_factory.mktemp("site")
    built = build(ROOT, out)
    assert built.returncode == 0, built.stderr
    return out


def page_text(site, path):
    """A built page's text, tags stripped and entities decoded."""
    with open(os.path.join(site, path), encoding="utf-8") as f:
        return html.unescape(re.sub(r"<[^>]+>", "", f.read()))


def test_strict_build_writes_every_page(site):
    for page in ("index.html", "concepts/index.html", "api/index.html",
                 "reference/http-api/index.html", "reference/configuration/index.html",
                 "manifests/index.html", "connectors/index.html",
                 "bundled-connectors/index.html", "sidecar/index.html", "security/index.html",
                 "distributed/index.html", "operations/index.html", "performance/index.html",
                 "development/index.html"):
        assert os.path.isfile(os.path.join(site, page)), page
    # The hook's own source is not published.
    assert not os.path.exists(os.path.join(site, "hooks"))


def test_a_broken_link_fails_the_build(tmp_path):
    shutil.copytree(os.path.join(ROOT, "docs"), tmp_path / "docs")
    shutil.copy(os.path.join(ROOT, "mkdocs.yml"), tmp_path)
    with open(tmp_path / "docs" / "operations.md", "a", encoding="utf-8") as f:
        f.write("\nSee [the audit](security.md#no-such-part) and [more](no-such-page.md).\n")
    built = build(tmp_path, tmp_path / "site")
    assert built.returncode == 1
    assert "'security.md' does not contain an anchor '#no-such-part'" in built.stderr
    assert "'no-such-page.md', but the target is not found" in built.stderr


def test_a_marker_naming_no_generator_fails():
    spec = importlib.util.spec_from_file_location(
        "reference_hook", os.path.join(ROOT, "docs", "hooks", "reference.py"))
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    page = types.SimpleNamespace(file=types.SimpleNamespace(src_uri="reference/x.md"))
    with pytest.raises(ValueError, match="reference/x.md: no generator called 'settings'"):
        hook.on_page_markdown("# X\n\n<!-- generated: settings -->\n", page=page)
    assert hook.on_page_markdown("no marker here", page=page) == "no marker here"


def test_http_api_reference_lists_every_operation_and_schema(site):
    text = page_text(site, "reference/http-api/index.html")
    assert "<!-- generated" not in text
    doc = openapi.document()
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert "%s %s" % (method.upper(), path) in text, (method, path)
            assert operation["summary"] in text, operation["operationId"]
    with open(os.path.join(site, "reference/http-api/index.html"), encoding="utf-8") as f:
        page = f.read()
    for name in doc["components"]["schemas"]:
        assert 'id="schema-%s"' % name.lower() in page, name
    # A field table row: the field, its type (a link to its schema) and whether it is required.
    assert re.search(r'<td><code>connector</code></td>\s*<td><a href="#schema-connectorurl">'
                     r'ConnectorURL</a></td>\s*<td>yes</td>', page)


def test_configuration_reference_lists_every_option(site):
    text = page_text(site, "reference/configuration/index.html")
    assert "<!-- generated" not in text
    for option in config.OPTIONS:
        assert option.key in text and option.env in text and option.flag in text, option.key
    with open(os.path.join(site, "reference/configuration/index.html"), encoding="utf-8") as f:
        page = f.read()
    # The default comes out of the help text into its own column, and out of "what it does".
    assert re.search(r"<td><code>genisys.port</code> <br> <code>GENISYS_PORT</code> <br> "
                     r"<code>--port PORT</code></td>\s*"
                     r"<td>7001; 0 picks a free one</td>\s*<td>HTTP API port.</td>", page)
    # A switch takes no value; its default comes from Settings.
    assert re.search(r"<code>--insecure-bind-any</code></td>\s*<td>false</td>", page)


def test_readme_is_short_and_keeps_the_original_examples():
    with open(README, encoding="utf-8") as f:
        readme = f.read()
    assert len(readme.splitlines()) <= 200
    # The seed's httpie examples, in order, character for character: the very commands
    # tests/api/test_seed_contract.py replays against a live genisys.
    assert [line[2:] for line in readme.splitlines() if line.startswith("$ http ")] \
        == SEED_COMMANDS
    assert SEED_GET_OUTPUT in readme
    assert SEED_COMPUTES_PY.rstrip("\n") in readme
    assert "make run" in readme and "make test" in readme


def test_readme_links_into_the_docs_resolve():
    with open(README, encoding="utf-8") as f:
        readme = f.read()
    links = re.findall(r"\]\(([^)#]+\.md|docs/)(?:#[^)]*)?\)", readme)
    assert "docs/reference/http-api.md" in links
    for link in links:
        assert os.path.exists(os.path.join(ROOT, link)), link
