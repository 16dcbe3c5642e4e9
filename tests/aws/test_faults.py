"""The failures AWS has and moto has not, through the fault proxy: throttling, eventual
consistency, lost answers, client-token reuse, want of capacity, refused credentials,
bad AMIs and instance types; and what each looks like to the connector's caller."""

import pytest

from tests.aws.common import Lab, define, instances, scale, scale_in_background, start_aws, status
from tests.support import wait_for


@pytest.fixture
def connector(start_connector, proxy):
    return start_aws(start_connector, proxy.url)


def ledger(connector):
    return connector.state()["launches"]


def test_bursts_of_request_limit_exceeded_converge_without_duplicates(
        start_genisys, start_connector, proxy, ec2, image_id):
    lab = Lab(start_genisys, start_connector, proxy=proxy, ec2=ec2).start(
        {"web": {"imageId": image_id, "instanceType": "t3.micro"}})
    for burst in (7, 4):  # more than botocore's 3 attempts: the connector answers 503
        proxy.throttle(burst)
        lab.scale(3 if burst == 7 else 5)
        lab.converged(3 if burst == 7 else 5)
    assert len(instances(ec2, "web")) == 5
    # Every RunInstances that reached moto launched what was missing, once.
    assert proxy.forwarded("RunInstances") == 2
    assert "ConnectorThrottled" in lab.genisys.log()  # it saw the 503s, and waited them out


def test_throttling_past_the_retries_is_a_503_with_retry_after(connector, proxy, ec2,
                                                                image_id):
    define(connector, "web", image_id)
    proxy.throttle(100)
    r = scale(connector, "web", 2)
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] == "1"
    assert r.json()["error"]["reason"] == "Throttled"
    assert "RequestLimitExceeded" in r.json()["error"]["message"]
    r = status(connector, "web")
    assert (r.status_code, r.headers["Retry-After"]) == (503, "1")
    r = connector.request("POST", "/batch/status", json={"services": ["web"]})
    assert r.json()["services"]["web"]["error"]["retryAfter"] == 1
    proxy.throttle(0)
    assert instances(ec2, "web") == [] and ledger(connector) == []
    assert scale(connector, "web", 2).json() == {"number": 2, "running_resources": 2}


def test_instances_invisible_for_seconds_are_not_launched_twice(connector, proxy, ec2,
                                                                 image_id):
    define(connector, "web", image_id)
    proxy.hide_new(4)
    assert scale(connector, "web", 3).json() == {"number": 3, "running_resources": 3}
    # DescribeInstances lists none of them yet; the ledger counts them.
    assert connector.request("GET", "/service/web/status").json() == {"running_resources": 3}
    assert scale(connector, "web", 3).json()["running_resources"] == 3
    assert scale(connector, "web", 4).json()["running_resources"] == 4
    assert proxy.forwarded("RunInstances") == 2
    assert len(instances(ec2, "web")) == 4  # moto itself shows them all
    # Once listed, the launches leave the ledger.
    wait_for(lambda: status(connector, "web").json() == {"running_resources": 4}
             and ledger(connector) == [], timeout=20, message="the ledger settled")


def test_genisys_converges_on_instances_aws_does_not_show_yet_with_one_launch(
        start_genisys, start_connector, proxy, ec2, image_id):
    lab = Lab(start_genisys, start_connector, proxy=proxy, ec2=ec2).start(
        {"web": {"imageId": image_id, "instanceType": "t3.micro"}})
    proxy.hide_new(5)
    lab.scale(3)
    lab.converged(3)  # DescribeInstances listed none of them for their first 5 s
    assert proxy.forwarded("RunInstances") == 1
    assert len(instances(ec2, "web")) == 3


def test_terminating_instances_aws_does_not_show_yet_is_a_503_until_it_does(
        connector, proxy, ec2, image_id):
    define(connector, "web", image_id)
    proxy.hide_new(3)
    assert scale(connector, "web", 2).json()["running_resources"] == 2
    r = scale(connector, "web", 0)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["reason"] == "BackendUnavailable"
    assert "InvalidInstanceID.NotFound" in r.json()["error"]["message"]
    assert status(connector, "web").json() == {"running_resources": 2}  # nothing stopped
    wait_for(lambda: scale(connector, "web", 0).status_code == 200, timeout=20,
             message="the scale-down taken once AWS shows the instances")
    assert instances(ec2, "web") == []
    assert status(connector, "web").json() == {"running_resources": 0}


def test_a_dropped_run_instances_answer_retried_with_the_same_token_launches_once(
        connector, proxy, ec2, image_id):
    define(connector, "web", image_id)
    proxy.drop_run_answers(1)
    r = scale(connector, "web", 3)
    assert r.json() == {"number": 3, "running_resources": 3}, r.text
    assert proxy.calls("RunInstances") == 2  # botocore retried the lost call...
    assert proxy.forwarded("RunInstances") == 1  # ...which AWS answered from its token
    assert len(instances(ec2, "web")) == 3
    assert status(connector, "web").json() == {"running_resources": 3}


def test_no_capacity_is_a_partial_result_that_says_how_many_run(connector, proxy, ec2,
                                                                image_id):
    define(connector, "web", image_id)
    assert scale(connector, "web", 1).json()["running_resources"] == 1
    proxy.set_capacity(2)
    r = scale(connector, "web", 5)
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["reason"] == "InsufficientCapacity" and error["field"] == "number"
    assert error["message"] == "AWS had capacity for 2 of the 4 instances of web asked for: 3 run"
    assert len(instances(ec2, "web")) == 3
    assert status(connector, "web").json() == {"running_resources": 3}
    r = scale(connector, "web", 5)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["message"] == (
        "AWS has no capacity for any of the 2 instances of web asked for "
        "(InsufficientInstanceCapacity: We currently do not have sufficient capacity in the "
        "Availability Zone you requested.): 3 run")
    assert len(instances(ec2, "web")) == 3 and ledger(connector) == []


def test_unauthorized_operation_is_a_403_shown_as_connector_unauthorized(
        start_genisys, start_connector, proxy, ec2, image_id):
    lab = Lab(start_genisys, start_connector, proxy=proxy, ec2=ec2)
    proxy.deny("RunInstances")
    lab.start({"web": {"imageId": image_id, "instanceType": "t3.micro"}})
    r = scale(lab.connector, "web", 1)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["reason"] == "BackendForbidden"
    assert "UnauthorizedOperation" in r.json()["error"]["message"]
    lab.scale(1)
    entry = wait_for(lambda: (lab.entry() or {}).get("reason") == "ConnectorUnauthorized"
                     and lab.entry(), timeout=20,
                     message="web shown ConnectorUnauthorized (%s)" % lab.entry())
    assert ("403, what the connector drives refused the connector's own credentials: AWS "
            "refused the connector's credentials while launching 1 instance(s) of web: "
            "UnauthorizedOperation") in entry["message"], entry
    assert instances(ec2, "web") == [] and ledger(lab.connector) == []


@pytest.mark.parametrize("field,value,code", [
    ("imageId", "ami-0123456789abcdef0", "InvalidAMIID.NotFound"),
    ("instanceType", "t9.bogus", "InvalidInstanceType"),
])
def test_a_bad_ami_or_instance_type_is_a_422_naming_the_field(connector, ec2, image_id,
                                                              field, value, code):
    define(connector, "web", image_id, **{field: value})
    r = scale(connector, "web", 2)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert (error["reason"], error["field"]) == ("StartFailed", field), error
    assert code in error["message"] and value in error["message"], error
    assert instances(ec2, "web") == [] and ledger(connector) == []


def test_a_token_reused_after_its_instances_terminated(start_connector, proxy, ec2, image_id):
    """The ledger holds a launch whose answer was never seen, and whose instances were
    terminated meanwhile: the replay hears IdempotentInstanceTerminated, forgets it, and
    the next order launches anew."""
    connector = start_aws(start_connector, proxy.url)
    define(connector, "web", image_id)
    proxy.hold_run_answers()
    pending = scale_in_background(connector, "web", 2)
    wait_for(lambda: proxy.held() == 1, timeout=20, message="RunInstances forwarded, held")
    connector.kill()
    proxy.release()
    pending.join()
    launched = instances(ec2, "web")
    assert len(launched) == 2
    ec2.terminate_instances(InstanceIds=launched)
    restarted = start_aws(start_connector, proxy.url, state_dir=connector.state_dir)
    wait_for(lambda: "its instances were terminated already" in restarted.log(), timeout=20,
             message="the replay told the instances were terminated")
    # The line is logged before the ledger without the launch is written.
    wait_for(lambda: ledger(restarted) == [], timeout=20, message="the launch forgotten")
    assert status(restarted, "web").json() == {"running_resources": 0}
    assert scale(restarted, "web", 2).json()["running_resources"] == 2
    assert len(instances(ec2, "web")) == 2

