"""genisys on an etcd that takes clients over TLS only, asks each for a certificate, and
has authentication on: it works as a user confined to its key prefix, gets a new token
when its token goes stale, and each thing that can be wrong at start (the CA, the
certificate, the password, a permission) is one line on stderr naming it, and exit 1.
The password never appears in an answer, a log line or an error."""

import asyncio
import os

import pytest
import trustme

from genisys.store import store_from_url
from tests.etcd import EtcdCluster, etcd_binary
from tests.support import run_genisys, wait_for

#: The store's keys: the store URL's prefix.
PREFIX = "gen"


@pytest.fixture(scope="module")
def secure_etcd(tmp_path_factory):
    """One member over TLS with client certificates and authentication on: ``genisys``
    may read and write under PREFIX, ``reader`` only read there, ``outsider`` only use
    other keys."""
    etcd_binary()
    cluster = EtcdCluster(1, workdir=str(tmp_path_factory.mktemp("etcd")), tls=True)
    cluster.start()
    cluster.enable_auth({"genisys": ("READWRITE", PREFIX + "/"),
                         "reader": ("READ", PREFIX + "/"),
                         "outsider": ("READWRITE", "other/")})
    yield cluster
    cluster.stop()


def serve(cluster, tmp_path, *, user="genisys", password=None, flags=None, env=None):
    """``genisys serve`` on the cluster as ``user`` (with its password unless
    ``password``), run until it exits (it exits at once when it cannot start)."""
    args = ["--port", "0", "--store", cluster.url(PREFIX)] + (
        flags if flags is not None else cluster.tls.flags()) + ["--etcd-user", user]
    secret = password if password is not None else cluster.users[user]
    return run_genisys(args, cwd=str(tmp_path), env=dict(env or {},
                                                         GENISYS_ETCD_PASSWORD=secret))


def one_line(result, *secrets):
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for secret in secrets:
        assert secret not in result.stderr + result.stdout
    return lines[0]


def test_genisys_works_as_a_user_confined_to_its_prefix_and_shows_no_password(
        secure_etcd, start_genisys, start_connector):
    password = secure_etcd.users["genisys"]
    server = start_genisys("--store", secure_etcd.url(PREFIX), *secure_etcd.tls.flags(),
                           "--etcd-user", "genisys", "--log-level", "DEBUG",
                           env={"GENISYS_ETCD_PASSWORD": password}, store=False)
    connector = start_connector(backend="simulated")
    r = server.request("PUT", "/compute/sim", json={"connector": connector.url})
    assert r.status_code == 201, r.text
    r = server.request("POST", "/service/web/scale", json={"compute": "sim", "number": 2})
    assert r.status_code == 202, r.text
    wait_for(lambda: (server.request("GET", "/service/web").json()["status"]["computes"]
                      .get("sim") or {}).get("running") == 2, timeout=30,
             message="web running 2 on sim")
    ready = server.request("GET", "/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["store"] == "ok", ready.text
    for text in (ready.text, server.request("GET", "/metrics").text, server.log()):
        assert password not in text


def test_a_stale_token_is_replaced_and_calls_and_watches_go_on(secure_etcd, io_loop):
    security = secure_etcd.security("genisys")
    root = secure_etcd.root_token

    async def scenario():
        async with store_from_url(secure_etcd.url(PREFIX), etcd_security=security) as store:
            await store.put("k/a", {"n": 1})
            watch = store.watch("k/")
            first = asyncio.ensure_future(watch.__anext__())  # the watch starts
            stale = store._client._token
            # Authentication turned off and on again: every token given before is
            # forgotten ("invalid auth token"), as one idle past its TTL would be.
            member = secure_etcd.members[0]
            member.call("/v3/auth/disable", {}, token=root)
            member.call("/v3/auth/enable", {})
            secure_etcd.root_token = secure_etcd.token("root")
            # And the member restarts: the watch's stream breaks, and opens again.
            secure_etcd.restart(member)
            assert (await store.get("k/a")).value == {"n": 1}  # a read, with a new token
            assert store._client._token not in (None, stale)
            await store.put("k/b", {"n": 2})
            event = await asyncio.wait_for(first, timeout=30)
            assert (event.type, event.key) == ("put", "k/b")
            watch.close()
    io_loop.run_sync(scenario, timeout=60)


def test_a_wrong_password_is_one_line(secure_etcd, tmp_path):
    line = one_line(serve(secure_etcd, tmp_path, password="not-the-password"),
                    "not-the-password")
    assert "etcd refused user 'genisys': wrong user name or password" in line


def test_a_user_that_may_only_read_is_refused_at_start(secure_etcd, tmp_path):
    line = one_line(serve(secure_etcd, tmp_path, user="reader"),
                    secure_etcd.users["reader"])
    assert "etcd user 'reader' may read but not write the keys under 'gen/'" in line


def test_a_user_without_access_to_the_prefix_is_refused_at_start(secure_etcd, tmp_path):
    line = one_line(serve(secure_etcd, tmp_path, user="outsider"),
                    secure_etcd.users["outsider"])
    assert "etcd user 'outsider' may not read the keys under 'gen/'" in line


def test_a_member_certificate_from_another_ca_is_one_line(secure_etcd, tmp_path):
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    line = one_line(serve(secure_etcd, tmp_path,
                          flags=secure_etcd.tls.flags(ca_file=str(other))))
    assert "the member's certificate is not signed by a CA of %s" % other in line


def test_an_expired_client_certificate_is_one_line(secure_etcd, tmp_path):
    cert, key = secure_etcd.tls.issue("expired", "genisys-client", expired=True)
    line = one_line(serve(secure_etcd, tmp_path, flags=secure_etcd.tls.flags(cert, key)))
    assert "the member refused the client certificate %s" % cert in line


def test_no_client_certificate_is_one_line(secure_etcd, tmp_path):
    line = one_line(serve(secure_etcd, tmp_path,
                          flags=["--etcd-ca-file", secure_etcd.tls.ca_file]))
    assert "the member refused the client certificate: none was given" in line


@pytest.mark.parametrize("flags, env, field, message", [
    (["--etcd-cert-file", "c.pem"], {}, "genisys.etcd_key_file",
     "needs both --etcd-cert-file and --etcd-key-file"),
    (["--etcd-user", "genisys"], {}, "genisys.etcd_user",
     "etcd user 'genisys' needs a password"),
    ([], {"GENISYS_ETCD_PASSWORD": "s3cret-pw"}, "genisys.etcd_user",
     "an etcd password was given"),
    (["--etcd-user", "bad user"], {}, "genisys.etcd_user", "must be an etcd user name"),
    (["--etcd-ca-file", "missing.pem"], {}, "genisys.etcd_ca_file",
     "cannot load CA certificates from missing.pem"),
])
def test_bad_etcd_settings_are_refused_naming_the_field(tmp_path, flags, env, field, message):
    result = run_genisys(["--port", "0", "--store", "etcd+https://127.0.0.1:1/gen"] + flags,
                         cwd=str(tmp_path), env=env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "s3cret-pw" not in result.stderr
    assert field in result.stderr or field.split(".")[1].replace("_", "-") in result.stderr


def test_etcd_settings_for_another_store_are_refused(tmp_path):
    result = run_genisys(["--port", "0", "--store", "memory://", "--etcd-user", "genisys"],
                         cwd=str(tmp_path))
    assert result.returncode == 2
    assert "genisys.etcd_user is for an etcd store, and the store is memory://" in result.stderr


def test_a_password_file_others_can_read_is_refused(tmp_path):
    path = tmp_path / "etcd-password"
    path.write_text("s3cret-pw\n")
    os.chmod(path, 0o644)
    result = run_genisys(["--port", "0", "--store", "etcd://127.0.0.1:1/gen", "--etcd-user",
                          "genisys", "--etcd-password-file", str(path)], cwd=str(tmp_path))
    assert result.returncode == 2
    assert "can be read by other users: chmod 600 it" in result.stderr
    assert "s3cret-pw" not in result.stderr
