"""End to end: a real genisys, a real aws connector, moto behind the fault proxy.

What is checked is what moto runs (DescribeInstances by the connector's tags, straight
to moto), and what genisys says in status.
"""

import pytest

from tests.aws.common import instances, start_aws
from tests.support import free_port, wait_for

FAST = ["--poll-interval", "500ms", "--backoff-initial", "100ms", "--backoff-max", "1s",
        "--connector-timeout", "10s", "--connector-connect-timeout", "1s"]


class Lab:
    """genisys + an aws connector (on a fixed port, so it can be restarted) + moto."""

    def __init__(self, start_genisys, start_connector, *, proxy, ec2):
        self.start_genisys = start_genisys
        self.start_connector = start_connector
        self.proxy = proxy
        self.ec2 = ec2
        self.port = free_port()
        self.connector = None
        self.genisys = None

    def start_the_connector(self, *args, state_dir=None):
        self.connector = start_aws(self.start_connector, self.proxy.url, "--port",
                                   str(self.port), "--capacity", "50", *args,
                                   state_dir=state_dir)
        return self.connector

    def start(self, definitions):
        self.start_the_connector()
        for service, body in definitions.items():
            r = self.connector.request("PUT", "/service/" + service, json=body)
            assert r.status_code == 201, r.text
        self.genisys = self.start_genisys(*FAST)
        r = self.genisys.request("PUT", "/compute/aws",
                                 json={"connector": "http://127.0.0.1:%d" % self.port})
        assert r.status_code == 201, r.text
        return self

    def scale(self, number, service="web"):
        r = self.genisys.request("POST", "/service/%s/scale" % service,
                                 json={"compute": "aws", "number": number})
        assert r.status_code == 202, r.text

    def entry(self, service="web"):
        r = self.genisys.request("GET", "/service/" + service)
        return r.json()["status"]["computes"].get("aws") if r.status_code == 200 else None

    def converged(self, number, service="web", running=None):
        """Wait until genisys says Converged at ``number`` and moto runs exactly that many
        (``running()``: another count of what runs, for a group's instances)."""
        running = running or (lambda: len(instances(self.ec2, service)))

        def check():
            entry = self.entry(service) or {}
            return (entry.get("condition") == "Converged" and entry.get("running") == number
                    and running() == number)
        wait_for(check, timeout=40, interval=0.1,
                 message="%s converged at %d (status %s, running %d)"
                 % (service, number, self.entry(service), running()))
        return instances(self.ec2, service)


@pytest.fixture
def aws_lab(start_genisys, start_connector, proxy, ec2):
    return Lab(start_genisys, start_connector, proxy=proxy, ec2=ec2)


def instance_body(image_id):
    return {"imageId": image_id, "instanceType": "t3.micro", "tags": {"team": "web"}}


def launch_times(ec2, ids):
    reservations = ec2.describe_instances(InstanceIds=ids)["Reservations"]
    return {i["InstanceId"]: i["LaunchTime"] for r in reservations for i in r["Instances"]}


def test_zero_to_five_to_two_instances(aws_lab, ec2, image_id):
    lab = aws_lab.start({"web": instance_body(image_id)})
    lab.scale(5)
    five = lab.converged(5)
    reservations = ec2.describe_instances(InstanceIds=five)["Reservations"]
    tags = [{t["Key"]: t["Value"] for t in i["Tags"]} for r in reservations
            for i in r["Instances"]]
    assert all(t["genisys:connector"] == "test" and t["genisys:service"] == "web"
               and t["team"] == "web" and t["genisys:launch"].startswith("genisys-")
               for t in tags), tags
    assert all(i["ImageId"] == image_id and i["InstanceType"] == "t3.micro"
               for r in reservations for i in r["Instances"])

    lab.scale(2)
    two = lab.converged(2)
    assert set(two) < set(five)
    # Newest first: the two kept are among the oldest launched.
    times = launch_times(ec2, five)
    assert max(times[i] for i in two) <= min(times[i] for i in set(five) - set(two))
    terminated = instances(ec2, "web", states=("shutting-down", "terminated"))
    assert sorted(terminated) == sorted(set(five) - set(two))
    assert lab.connector.request("GET", "/service/web/status").json() == {
        "running_resources": 2}


def test_two_services_are_counted_apart(aws_lab, ec2, image_id):
    lab = aws_lab.start({"web": instance_body(image_id),
                         "api": dict(instance_body(image_id), instanceType="t3.small")})
    lab.scale(3, "web")
    lab.scale(2, "api")
    web = lab.converged(3, "web")
    api = lab.converged(2, "api")
    assert not set(web) & set(api)
    lab.scale(0, "api")
    lab.converged(0, "api")
    assert lab.converged(3, "web") == web


def test_an_instance_terminated_by_hand_is_replaced(aws_lab, ec2, image_id):
    lab = aws_lab.start({"web": instance_body(image_id)})
    lab.scale(3)
    three = lab.converged(3)
    ec2.terminate_instances(InstanceIds=[three[0]])  # by hand, straight to "AWS"
    wait_for(lambda: three[0] not in instances(ec2, "web") and len(instances(ec2, "web")) == 3,
             timeout=40, message="the terminated instance replaced (%s)" % instances(ec2, "web"))
    now = lab.converged(3)
    assert set(now) & set(three) == set(three[1:])


def test_the_auto_scaling_group_mode_sets_the_desired_capacity(aws_lab, ec2, autoscaling,
                                                               image_id):
    ec2.create_launch_template(LaunchTemplateName="web-template", LaunchTemplateData={
        "ImageId": image_id, "InstanceType": "t3.micro"})
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="web-asg", MinSize=0, MaxSize=6, DesiredCapacity=0,
        LaunchTemplate={"LaunchTemplateName": "web-template", "Version": "$Latest"},
        AvailabilityZones=["us-east-1a"])

    def group():
        return autoscaling.describe_auto_scaling_groups(
            AutoScalingGroupNames=["web-asg"])["AutoScalingGroups"][0]

    def in_service():
        return len([i for i in group()["Instances"] if i["LifecycleState"] == "InService"])

    lab = aws_lab.start({"web": {"autoScalingGroup": "web-asg"}})
    lab.scale(4)
    lab.converged(4, running=in_service)
    assert group()["DesiredCapacity"] == 4
    first = sorted(i["InstanceId"] for i in group()["Instances"])

    autoscaling.set_instance_protection(AutoScalingGroupName="web-asg", InstanceIds=first[:1],
                                        ProtectedFromScaleIn=True)
    lab.scale(1)
    lab.converged(1, running=in_service)
    assert group()["DesiredCapacity"] == 1
    # Scaling in picked unprotected instances: the protected one is the one left.
    assert [i["InstanceId"] for i in group()["Instances"]] == first[:1]
