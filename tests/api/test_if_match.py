"""If-Match on every conditional write: a matching tag lets the write through, any other
is a 412 that leaves the stored object as it was.

Written to kill what a mutation run of ``APIHandler.if_match`` left alive: no test sent
a matching If-Match on DELETE, nor a tag without quotes or with blanks around it."""

import pytest

from tests.api.client import Api

CONNECTOR = "http://127.0.0.1:7051"


@pytest.fixture
def api(app, http_server, base_url):
    client = Api(base_url)
    yield client
    client.close()


async def compute_version(api, name="local"):
    code, _, headers = await api.call("GET", "/compute/" + name)
    assert code == 200
    return int(headers["ETag"].strip('"'))


async def service(api, name="web"):
    code, body, headers = await api.call("GET", "/service/" + name)
    assert code == 200, body
    assert headers["ETag"] == '"%d"' % body["resourceVersion"]
    return body


async def setup_compute_and_service(api):
    code, body, _ = await api.call("POST", "/compute", {"name": "local", "connector": CONNECTOR})
    assert code == 201, body
    code, body, _ = await api.call("PUT", "/service/web", {"replicas": {"local": 2}})
    assert code == 201, body
    return body


@pytest.mark.gen_test
@pytest.mark.parametrize("form", ['"%d"', "%d", '  "%d"  ', "\t%d "])
async def test_a_matching_tag_deletes_a_compute(api, form):
    code, body, _ = await api.call("POST", "/compute", {"name": "spare", "connector": CONNECTOR})
    assert code == 201, body
    version = await compute_version(api, "spare")
    code, body, _ = await api.call("DELETE", "/compute/spare",
                                   headers={"If-Match": form % version})
    assert (code, body) == (200, {"name": "spare", "connector": CONNECTOR})
    assert (await api.call("GET", "/compute/spare"))[0] == 404


@pytest.mark.gen_test
async def test_a_matching_tag_deletes_a_service(api):
    created = await setup_compute_and_service(api)
    code, body, headers = await api.call(
        "DELETE", "/service/web", headers={"If-Match": '"%d"' % created["resourceVersion"]})
    assert code == 202, body
    assert body["deleting"] is True and body["generation"] == created["generation"] + 1
    assert headers["ETag"] == '"%d"' % body["resourceVersion"]
    assert body["resourceVersion"] > created["resourceVersion"]
    assert (await service(api)) ["deleting"] is True


@pytest.mark.gen_test
async def test_star_deletes_what_exists(api):
    await setup_compute_and_service(api)
    code, body, _ = await api.call("DELETE", "/service/web", headers={"If-Match": " * "})
    assert code == 202 and body["deleting"] is True
    code, body, _ = await api.call("POST", "/compute", {"name": "spare", "connector": CONNECTOR})
    code, body, _ = await api.call("DELETE", "/compute/spare", headers={"If-Match": "*"})
    assert code == 200 and body["name"] == "spare"


@pytest.mark.gen_test
async def test_a_matching_tag_replaces_a_service(api):
    created = await setup_compute_and_service(api)
    code, body, _ = await api.call("PUT", "/service/web", {"replicas": {"local": 7}},
                                   headers={"If-Match": "%d" % created["resourceVersion"]})
    assert code == 200, body
    assert body["replicas"] == {"local": 7}
    assert (await service(api))["replicas"] == {"local": 7}


WEAK = "If-Match %r is a weak entity tag, which never matches; send the ETag as it came"
NOT_A_VERSION = "If-Match %r is not a resourceVersion of this object"


@pytest.mark.gen_test
@pytest.mark.parametrize("tag, message", [
    ('W/"{v}"', WEAK),  # the current version, but weak: never matches
    ('"{v}0"', "service 'web' is at resourceVersion {v}, If-Match asked for {v}0"),
    ('"-{v}"', NOT_A_VERSION),
    ('"\u00b2"', NOT_A_VERSION),  # a digit (superscript two), not an ASCII one
    ('"{v}.0"', NOT_A_VERSION),
    ('"X{v}X"', NOT_A_VERSION),
    ('""', NOT_A_VERSION),
])
async def test_any_other_tag_is_refused_and_changes_nothing(api, tag, message):
    created = await setup_compute_and_service(api)
    version = created["resourceVersion"]
    header = tag.format(v=version)
    expected = message % header if "%r" in message else message.format(v=version)
    for method, body in (("DELETE", None), ("PUT", {"replicas": {"local": 9}})):
        code, answer, _ = await api.call(method, "/service/web", body,
                                         headers={"If-Match": header})
        assert code == 412, answer
        assert answer["error"]["reason"] == "PreconditionFailed"
        assert answer["error"]["message"] == expected
    after = await service(api)
    assert after["resourceVersion"] == version
    assert after["replicas"] == {"local": 2} and after["deleting"] is False
    compute = await compute_version(api)
    code, answer, _ = await api.call("DELETE", "/compute/local",
                                     headers={"If-Match": tag.format(v=compute)})
    assert code == 412 and answer["error"]["reason"] == "PreconditionFailed"
    assert await compute_version(api) == compute
