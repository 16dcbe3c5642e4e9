"""End to end: a real genisys, a real aws connector, moto behind the fault proxy.

What is checked is what moto runs (DescribeInstances by the connector's tags, straight
to moto), and what genisys says in status.
"""

import pytest

from tests.aws.common import Lab, instances
from tests.support import wait_for


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
