"""Fixtures of the AWS connector tests: moto's server, the fault proxy in front of it, and
fake credentials.

moto's server (``ThreadedMotoServer``) runs once per test process on a free loopback port
and speaks the real EC2 and Auto Scaling APIs; its state is reset before each test. It
validates AMIs and instance types as AWS does (moto's own defaults do not). Each test
that wants faults gets a fresh ``FaultProxy`` in front of it. The credentials are fake
and unique to the session, so the secrets test can look for them in every answer and log.
"""

import os
import uuid

import boto3
import pytest
import requests

from tests.aws.faults import FaultProxy

REGION = "us-east-1"
ACCESS_KEY = "AKIAGENISYS%s" % uuid.uuid4().hex[:9].upper()
SECRET_KEY = "genisys-test-secret-%s" % uuid.uuid4().hex
#: What the connector processes get: the standard chain reads these, nothing else.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
               "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": "/dev/null",
               "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="session")
def moto_server():
    """The URL of moto's server; stopped at the end of the session."""
    from moto import settings
    from moto.server import ThreadedMotoServer

    # moto's 1,300 default AMIs take seconds to load after every reset: the tests register
    # the one they use.
    os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"
    settings.ENABLE_AMI_VALIDATION = True
    settings.EC2_ENABLE_INSTANCE_TYPE_VALIDATION = True
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield "http://%s:%d" % (host, port)
    server.stop()


@pytest.fixture
def moto(moto_server):
    """moto's URL, its state reset first."""
    requests.post(moto_server + "/moto-api/reset", timeout=10).raise_for_status()
    return moto_server


@pytest.fixture
def proxy(moto):
    """A fault proxy in front of (a freshly reset) moto."""
    proxy = FaultProxy(moto, region=REGION, credentials=CREDENTIALS).start()
    yield proxy
    proxy.stop()


def client(service, url):
    return boto3.client(service, endpoint_url=url, region_name=REGION,
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)


@pytest.fixture
def ec2(moto):
    """An EC2 client straight to moto (what a person does by hand)."""
    return client("ec2", moto)


@pytest.fixture
def autoscaling(moto):
    return client("autoscaling", moto)


@pytest.fixture
def image_id(ec2):
    """An AMI moto knows."""
    return ec2.register_image(Name="genisys-test", Architecture="x86_64",
                              RootDeviceName="/dev/xvda")["ImageId"]
