"""TLS: genisys serves HTTPS, and verifies the certificates of https connectors."""

import ssl

import pytest
import requests
import trustme

from genisys.connector.client import ConnectorClient, ConnectorUnreachable
from genisys.model import Compute
from tests.cli.test_serve import one_line_error
from tests.reconciler.fake_connector import FakeConnector
from tests.support import run_genisys


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def pki(ca, tmp_path):
    """A CA and a certificate for 127.0.0.1 and localhost, as files."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {name: str(tmp_path / (name + ".pem")) for name in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(paths["ca"])
    cert.private_key_pem.write_to_path(paths["key"])
    with open(paths["cert"], "wb") as f:
        for pem in cert.cert_chain_pems:
            f.write(pem.bytes())
    return paths


def test_genisys_serves_https(start_genisys, pki):
    genisys = start_genisys("--tls-cert", pki["cert"], "--tls-key", pki["key"])
    url = "https://127.0.0.1:%d" % genisys.port
    assert "genisys listening on https://" in genisys.log()
    r = requests.post(url + "/compute", json={"name": "c", "connector": "https://c.example"},
                      verify=pki["ca"], timeout=30)
    assert r.status_code == 201, r.text
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url + "/healthz", timeout=30)  # not signed by a CA the system knows
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get("http://127.0.0.1:%d/healthz" % genisys.port, timeout=30)


@pytest.mark.parametrize("which, words", [
    ("cert only", "genisys.tls_key: HTTPS needs both a certificate and its key"),
    ("key only", "genisys.tls_cert: HTTPS needs both a certificate and its key"),
    ("swapped", "cannot use certificate"),
    ("missing", "cannot use certificate"),
    ("bad ca", "connector.ca_file: cannot load CA certificates"),
])
def test_bad_tls_settings_stop_start_up(pki, tmp_path, which, words):
    args = {"cert only": ["--tls-cert", pki["cert"]],
            "key only": ["--tls-key", pki["key"]],
            "swapped": ["--tls-cert", pki["key"], "--tls-key", pki["cert"]],
            "missing": ["--tls-cert", str(tmp_path / "no.pem"), "--tls-key", pki["key"]],
            "bad ca": ["--connector-ca-file", pki["key"]]}[which]
    result = run_genisys(["serve", "--port", "0", "--store", "memory://"] + args,
                         cwd=str(tmp_path))
    assert result.returncode == 2
    assert words in one_line_error(result)


@pytest.fixture
def tls_connector(pki, io_loop):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki["cert"], pki["key"])
    fake = FakeConnector(ssl_options=context)
    yield fake
    io_loop.run_sync(fake.stop)


@pytest.mark.gen_test(timeout=30)
async def test_connector_certificates_are_verified(tls_connector, pki):
    compute = Compute("secure", tls_connector.url)
    trusting = ConnectorClient(connect_timeout=5, request_timeout=5, ca_file=pki["ca"])
    default = ConnectorClient(connect_timeout=5, request_timeout=5)
    try:
        await trusting.scale(compute, "web", 2)
        assert await trusting.running(compute, "web") == 2
        with pytest.raises(ConnectorUnreachable, match="certificate"):
            await default.running(compute, "web")
    finally:
        await trusting.aclose()
        await default.aclose()
    assert tls_connector.scales("web") == [2]


def test_plain_http_to_a_remote_connector_is_warned_about(start_genisys, tmp_path):
    computes = tmp_path / "computes.py"
    computes.write_text('far = {"name": "far", "connector": "http://192.0.2.10:7051"}\n'
                        'near = {"name": "near", "connector": "http://127.0.0.1:7051"}\n')
    genisys = start_genisys("--compute-file", str(computes))
    genisys.stop()
    log = genisys.log()
    assert "compute far reaches its connector over plain http" in log
    assert "compute near reaches" not in log
