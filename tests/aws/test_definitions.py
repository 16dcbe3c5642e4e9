"""Definitions of the aws backend (instances or an Auto Scaling group): what is taken,
what RunInstances is asked, and every refusal naming its field. And the in-flight
ledger's arithmetic. No AWS here."""

import pytest

from genisys.connector.aws.definition import AwsDefinition
from genisys.connector.aws.ledger import Launch, Ledger
from genisys.errors import Invalid

AMI = "ami-0abc1234"


def test_an_instances_definition_and_its_run_request():
    definition = AwsDefinition.from_body({
        "imageId": AMI, "instanceType": "m7g.2xlarge", "subnetId": "subnet-0123456789abcdef0",
        "securityGroupIds": ["sg-0abc1234", "sg-0abc1235"], "keyName": "ops",
        "userData": "#!/bin/sh\necho hi\n",
        "iamInstanceProfile": "arn:aws:iam::123456789012:instance-profile/web",
        "tags": {"team": "web"}, "terminationPolicy": "oldest"}, name="web")
    assert definition.kind == "instances"
    request = definition.run_request(count=3, token="tok", own_tags={"genisys:service": "web"})
    assert request == {
        "MinCount": 3, "MaxCount": 3, "ClientToken": "tok", "ImageId": AMI,
        "InstanceType": "m7g.2xlarge", "SubnetId": "subnet-0123456789abcdef0",
        "KeyName": "ops", "UserData": "#!/bin/sh\necho hi\n",
        "SecurityGroupIds": ["sg-0abc1234", "sg-0abc1235"],
        "IamInstanceProfile": {"Arn": "arn:aws:iam::123456789012:instance-profile/web"},
        "TagSpecifications": [{"ResourceType": "instance", "Tags": [
            {"Key": "team", "Value": "web"}, {"Key": "genisys:service", "Value": "web"}]}]}
    assert AwsDefinition.from_body(definition.to_json()) == definition


def test_a_launch_template_gives_the_image_and_type():
    definition = AwsDefinition.from_body({"name": "web", "launchTemplate": {
        "id": "lt-0abc1234", "version": 3}, "iamInstanceProfile": "web-role"})
    request = definition.run_request(count=1, token="t", own_tags={})
    assert request["LaunchTemplate"] == {"LaunchTemplateId": "lt-0abc1234", "Version": "3"}
    assert request["IamInstanceProfile"] == {"Name": "web-role"}
    assert "ImageId" not in request and "InstanceType" not in request
    assert definition.to_json()["launchTemplate"] == {"id": "lt-0abc1234", "version": "3"}


def test_an_auto_scaling_group_definition():
    definition = AwsDefinition.from_body({"autoScalingGroup": "web-asg"}, name="web")
    assert (definition.kind, definition.auto_scaling_group, definition.termination_policy) == (
        "autoScalingGroup", "web-asg", "newest")
    assert definition.to_json() == {"name": "web", "autoScalingGroup": "web-asg",
                                    "terminationPolicy": "newest"}


@pytest.mark.parametrize("body,field", [
    ({"instanceType": "t3.micro"}, "imageId"),
    ({"imageId": AMI}, "instanceType"),
    ({"imageId": "ami-12", "instanceType": "t3.micro"}, "imageId"),
    ({"imageId": 7, "instanceType": "t3.micro"}, "imageId"),
    ({"imageId": AMI, "instanceType": "T3 micro"}, "instanceType"),
    ({"imageId": AMI, "instanceType": "t3.micro", "subnetId": "sub-1"}, "subnetId"),
    ({"imageId": AMI, "instanceType": "t3.micro", "securityGroupIds": "sg-0abc1234"},
     "securityGroupIds"),
    ({"imageId": AMI, "instanceType": "t3.micro", "securityGroupIds": ["sg-0abc1234", "x"]},
     "securityGroupIds[1]"),
    ({"imageId": AMI, "instanceType": "t3.micro",
      "securityGroupIds": ["sg-0abc1234", "sg-0abc1234"]}, "securityGroupIds[1]"),
    ({"imageId": AMI, "instanceType": "t3.micro", "keyName": ""}, "keyName"),
    ({"imageId": AMI, "instanceType": "t3.micro", "userData": "x" * 16385}, "userData"),
    ({"imageId": AMI, "instanceType": "t3.micro", "userData": ["x"]}, "userData"),
    ({"imageId": AMI, "instanceType": "t3.micro", "iamInstanceProfile": "a b"},
     "iamInstanceProfile"),
    ({"imageId": AMI, "instanceType": "t3.micro", "tags": ["a"]}, "tags"),
    ({"imageId": AMI, "instanceType": "t3.micro", "tags": {"genisys:service": "x"}},
     "tags.genisys:service"),
    ({"imageId": AMI, "instanceType": "t3.micro", "tags": {"aws:x": "y"}}, "tags.aws:x"),
    ({"imageId": AMI, "instanceType": "t3.micro", "tags": {"a": 1}}, "tags.a"),
    ({"imageId": AMI, "instanceType": "t3.micro", "tags": {"k%d" % i: "v" for i in range(48)}},
     "tags"),
    ({"launchTemplate": {"name": "web"}}, "launchTemplate.version"),
    ({"launchTemplate": {"name": "web", "id": "lt-0abc1234", "version": "1"}},
     "launchTemplate"),
    ({"launchTemplate": {"id": "lt-x", "version": "1"}}, "launchTemplate.id"),
    ({"launchTemplate": {"name": "web", "version": "latest"}}, "launchTemplate.version"),
    ({"launchTemplate": {"name": "web", "version": "1", "extra": 1}},
     "launchTemplate.extra"),
    ({"imageId": AMI, "instanceType": "t3.micro", "terminationPolicy": "group"},
     "terminationPolicy"),
    ({"autoScalingGroup": "g", "instanceType": "t3.micro"}, "instanceType"),
    ({"autoScalingGroup": ""}, "autoScalingGroup"),
    ({"autoScalingGroup": "g", "terminationPolicy": "random"}, "terminationPolicy"),
    ({"imageId": AMI, "instanceType": "t3.micro", "image": AMI}, "image"),
])
def test_a_bad_definition_names_its_field(body, field):
    with pytest.raises(Invalid) as e:
        AwsDefinition.from_body(body, name="web")
    assert e.value.field == field, e.value


def launch(token, count, instances=None, at=0.0, service="web"):
    return Launch(token=token, service=service, count=count, request={}, at=at,
                  instances=instances)


def test_the_ledger_counts_what_is_not_listed_yet_and_forgets_what_is():
    ledger = Ledger(timeout=60, launches=[launch("a", 2, ["i-1", "i-2"]),
                                          launch("b", 3), launch("c", 1, service="api")])
    # i-1 listed; i-2 not yet; launch b unresolved, one of its instances listed already.
    live, coming, unknown = ledger.counted("web", {"i-1": "a", "i-0": "", "i-9": "b"})
    assert (sorted(live), coming, unknown) == (["i-0", "i-1", "i-9"], ["i-2"], 2)
    assert not ledger.settle("web", ["i-1", "i-0", "i-9"], now=10)
    assert ledger.settle("web", ["i-1", "i-2"], now=10)  # a is all listed: forgotten
    assert [x.token for x in ledger.launches] == ["b", "c"]
    assert ledger.settle("web", [], now=61)  # b timed out; api's launch is not web's
    assert [x.token for x in ledger.launches] == ["c"]


def test_the_ledger_does_not_count_what_it_terminated_while_aws_still_lists_it():
    ledger = Ledger(timeout=60, launches=[launch("a", 2, ["i-1", "i-2"])])
    ledger.terminating("web", ["i-2", "i-3"], now=5)
    assert ledger.counted("web", {"i-3": "", "i-4": ""}) == (["i-4"], ["i-1"], 0)
    ledger.settle("web", ["i-3"], now=6)
    assert sorted(ledger.terminated) == ["i-3"]  # i-2 is no longer listed: settled
    ledger.settle("web", ["i-3"], now=70)
    assert ledger.terminated == {}


def test_client_tokens_are_deterministic_unique_and_short():
    ledger = Ledger(timeout=60, epoch="e1")
    first, second = ledger.next_token("c", "web"), ledger.next_token("c", "web")
    assert first != second and len(first) <= 64 and first.startswith("genisys-")
    again = Ledger(timeout=60)
    again.load(Ledger(timeout=60, epoch="e1").to_state())
    assert again.next_token("c", "web") == first
    assert Ledger(timeout=60, epoch="e2").next_token("c", "web") != first
    assert Ledger(timeout=60, epoch="e1").next_token("c", "api") != first
