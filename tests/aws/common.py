"""Helpers of the AWS connector tests: an aws connector process in front of moto (or the
fault proxy), a lab of genisys with one, calls cut short by a kill, and what moto says
runs."""

import threading

import requests

from tests.aws.conftest import CREDENTIALS, REGION
from tests.support import free_port, wait_for

#: Instance states that are a resource.
LIVE = ("pending", "running")


def start_aws(start_connector, url, *args, state_dir=None, connector_id="test"):
    """A real ``genisys connector --backend aws`` on ``url`` (moto or the proxy), with
    the fake credentials in its environment and fast timings."""
    return start_connector("--endpoint-url", url, "--region", REGION, "--connector-id",
                           connector_id, "--retry-after", "1s", "--in-flight-timeout", "20s",
                           "--log-level", "DEBUG", *args, backend="aws", state_dir=state_dir,
                           env=CREDENTIALS)


def instances(ec2, service=None, *, connector_id="test", states=LIVE):
    """Ids of the connector's instances (of ``service``) in ``states``, as moto has them."""
    filters = [{"Name": "tag:genisys:connector", "Values": [connector_id]},
               {"Name": "instance-state-name", "Values": list(states)}]
    if service is not None:
        filters.append({"Name": "tag:genisys:service", "Values": [service]})
    reservations = ec2.describe_instances(Filters=filters)["Reservations"]
    return sorted(i["InstanceId"] for r in reservations for i in r["Instances"])


def define(connector, service, image_id, **fields):
    body = dict({"imageId": image_id, "instanceType": "t3.micro"}, **fields)
    r = connector.request("PUT", "/service/" + service, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def scale(connector, service, number):
    return connector.request("POST", "/service/%s/scale" % service, json={"number": number})


def status(connector, service):
    return connector.request("GET", "/service/%s/status" % service)


def scale_in_background(connector, service, number):
    """POST scale in a thread, for a call that the test interrupts (killing the connector)."""
    def call():
        try:
            scale(connector, service, number)
        except requests.RequestException:
            pass  # the connector was killed under it
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


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
