"""The aws connector as a process, on moto: definitions, the batch extension (one
DescribeInstances for a whole batch), capacity, the flags, and the secrets it never tells."""

import json
import os
import subprocess
import sys

import pytest

from genisys.cli import build_parser, connector_settings
from genisys.errors import ConfigError
from tests.aws.common import define, instances, scale, start_aws, status
from tests.aws.conftest import ACCESS_KEY, CREDENTIALS, SECRET_KEY
from tests.support import ROOT

#: The genisys command in a Python where boto3 is absent (None in sys.modules is how
#: Python marks a module that cannot be imported).
WITHOUT_BOTO3 = ("import sys; sys.modules['boto3'] = sys.modules['botocore'] = None; "
                 "from genisys.cli import main; sys.exit(main(sys.argv[1:]))")


@pytest.fixture
def connector(start_connector, proxy):
    return start_aws(start_connector, proxy.url)


def test_a_bad_definition_is_refused_naming_the_field_and_nothing_is_stored(connector,
                                                                            image_id):
    r = connector.request("PUT", "/service/web", json={"imageId": "ami-xyz",
                                                      "instanceType": "t3.micro"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["field"] == "imageId"
    r = connector.request("PUT", "/service/web", json={"autoScalingGroup": "g",
                                                      "imageId": image_id})
    assert (r.status_code, r.json()["error"]["field"]) == (400, "imageId"), r.text
    assert connector.request("GET", "/service").json() == {}
    assert connector.state()["definitions"] == {}
    assert scale(connector, "web", 1).status_code == 404


def test_definitions_are_kept_across_restarts(start_connector, proxy, image_id):
    connector = start_aws(start_connector, proxy.url)
    body = define(connector, "web", image_id, subnetId=None, tags={"team": "a"},
                  launchTemplate={"name": "web-template", "version": "$Latest"})
    assert body["launchTemplate"] == {"name": "web-template", "version": "$Latest"}
    r = connector.request("PUT", "/service/grp", json={"autoScalingGroup": "web-asg",
                                                       "terminationPolicy": "group"})
    assert r.status_code == 201, r.text
    connector.stop()
    again = start_aws(start_connector, proxy.url, state_dir=connector.state_dir)
    assert again.request("GET", "/service/web").json() == body
    assert again.request("GET", "/service/grp").json() == {
        "name": "grp", "autoScalingGroup": "web-asg", "terminationPolicy": "group"}


def test_a_state_file_whose_ledger_cannot_be_read_stops_the_start(start_connector, proxy,
                                                                   tmp_path):
    state_dir = tmp_path / "broken"
    state_dir.mkdir()
    (state_dir / "state.json").write_text(json.dumps({"version": 1, "definitions": {},
                                                      "launches": [{"token": "t"}]}))
    with pytest.raises(AssertionError) as e:
        start_aws(start_connector, proxy.url, state_dir=str(state_dir))
    assert "the launches in flight in %s cannot be read" % (state_dir / "state.json") \
        in str(e.value)


def test_a_batch_status_is_one_describe_instances(connector, proxy, ec2, autoscaling,
                                                  image_id):
    for service in ("web", "api", "jobs"):
        define(connector, service, image_id)
    ec2.create_launch_template(LaunchTemplateName="grp-template", LaunchTemplateData={
        "ImageId": image_id, "InstanceType": "t3.micro"})
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="grp-asg", MinSize=0, MaxSize=4, DesiredCapacity=2,
        LaunchTemplate={"LaunchTemplateName": "grp-template", "Version": "$Latest"},
        AvailabilityZones=["us-east-1a"])
    connector.request("PUT", "/service/grp", json={"autoScalingGroup": "grp-asg"})
    r = connector.request("POST", "/batch/scale", json={"services": {"web": 2, "api": 1}})
    assert r.json() == {"services": {"web": {"running_resources": 2},
                                     "api": {"running_resources": 1}}}, r.text
    before = proxy.calls("DescribeInstances"), proxy.calls("DescribeAutoScalingGroups")
    r = connector.request("POST", "/batch/status",
                          json={"services": ["web", "api", "jobs", "grp", "ghost"]})
    assert r.status_code == 200, r.text
    services = r.json()["services"]
    assert {s: e.get("running_resources") for s, e in services.items()} == {
        "web": 2, "api": 1, "jobs": 0, "grp": 2, "ghost": None}
    assert services["ghost"]["error"]["reason"] == "ServiceNotDefined"
    assert (proxy.calls("DescribeInstances") - before[0],
            proxy.calls("DescribeAutoScalingGroups") - before[1]) == (1, 1)


def test_capacity_comes_from_the_account_limit_or_the_flag(start_connector, proxy, ec2,
                                                           image_id):
    limit = int(ec2.describe_account_attributes(AttributeNames=["max-instances"])
                ["AccountAttributes"][0]["AttributeValues"][0]["AttributeValue"])
    connector = start_aws(start_connector, proxy.url)
    define(connector, "web", image_id)
    assert connector.request("GET", "/capabilities").json()["capacity"] == {
        "total": limit, "used": 0}
    r = scale(connector, "web", limit + 1)
    assert r.status_code == 409 and r.json()["error"]["reason"] == "InsufficientCapacity"
    assert instances(ec2, "web") == []

    flagged = start_aws(start_connector, proxy.url, "--capacity", "2", "--connector-id",
                        "other")
    define(flagged, "web", image_id)
    assert scale(flagged, "web", 2).json()["running_resources"] == 2
    assert flagged.request("GET", "/capabilities").json()["capacity"] == {"total": 2,
                                                                          "used": 2}
    assert scale(flagged, "web", 3).status_code == 409
    assert len(instances(ec2, "web", connector_id="other")) == 2


def test_no_credential_appears_in_any_answer_or_log(connector, proxy, ec2, image_id):
    answers = []

    def keep(r):
        answers.append("%s %s\n%s" % (r.status_code, json.dumps(dict(r.headers)), r.text))
        return r
    keep(connector.request("PUT", "/service/web", json={"imageId": image_id,
                                                        "instanceType": "t3.micro"}))
    keep(scale(connector, "web", 2))
    keep(status(connector, "web"))
    proxy.throttle(100)
    keep(scale(connector, "web", 3))
    proxy.throttle(0)
    proxy.deny("TerminateInstances")
    keep(scale(connector, "web", 0))
    keep(connector.request("PUT", "/service/bad", json={"imageId": "ami-0000000000000000f",
                                                        "instanceType": "t3.micro"}))
    keep(scale(connector, "bad", 1))
    keep(connector.request("POST", "/batch/status", json={"services": ["web", "bad"]}))
    keep(connector.request("GET", "/metrics"))
    keep(connector.request("GET", "/capabilities"))
    assert [a.split(" ")[0] for a in answers] == [
        "201", "200", "200", "503", "403", "201", "422", "200", "200", "200"]
    log = connector.log()
    assert "INFO botocore.credentials" in log  # at --log-level DEBUG, boto's loggers log here
    state = json.dumps(connector.state())
    for text in answers + [log, state]:
        assert SECRET_KEY not in text
        assert ACCESS_KEY not in text


@pytest.mark.parametrize("argv,field", [
    (["--backend", "aws", "--region", "Mars"], "--region"),
    (["--backend", "aws", "--endpoint-url", "ftp://x"], "--endpoint-url"),
    (["--backend", "process", "--region", "us-east-1"], "--region"),
    (["--backend", "aws", "--retry-after", "soon"], "--retry-after"),
])
def test_bad_flags_are_refused_naming_the_flag(argv, field):
    args = build_parser().parse_args(["connector"] + argv)
    with pytest.raises(ConfigError) as e:
        connector_settings(args, environ={})
    assert e.value.field == field


def test_flags_make_the_settings():
    args = build_parser().parse_args([
        "connector", "--backend", "aws", "--region", "eu-west-1", "--endpoint-url",
        "http://127.0.0.1:5000", "--connector-id", "blue", "--state-dir", "/tmp/x",
        "--in-flight-timeout", "30s", "--retry-after", "3s"])
    aws = connector_settings(args, environ={}).aws
    assert (aws.region, aws.endpoint_url, aws.connector_id, aws.state_dir,
            aws.in_flight_timeout, aws.retry_after) == (
        "eu-west-1", "http://127.0.0.1:5000", "blue", "/tmp/x", 30.0, 3.0)


def test_the_aws_backend_without_boto3_says_to_install_the_extra(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_BOTO3, "connector", "--backend", "aws", "--port", "0"],
        cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
        text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "genisys: connector: --backend: the aws backend needs boto3, which is not installed: "
        "pip install 'genisys[aws]'")
    assert not (tmp_path / "var").exists()
    check = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['boto3'] = None; "
         "import genisys.app, genisys.connector.main, genisys.commands"],
        cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True,
        text=True, timeout=60)
    assert check.returncode == 0, check.stderr


def test_no_region_at_all_is_said_plainly(start_connector, tmp_path):
    env = {k: v for k, v in CREDENTIALS.items() if k != "AWS_DEFAULT_REGION"}
    with pytest.raises(AssertionError) as e:
        start_connector("--backend", "aws", backend="aws", env=dict(env, AWS_REGION="",
                                                                     AWS_DEFAULT_REGION=""))
    assert ("no AWS region: give --region, or set AWS_REGION or AWS_DEFAULT_REGION"
            in str(e.value))
