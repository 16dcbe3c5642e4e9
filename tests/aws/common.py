"""Helpers of the AWS connector tests: an aws connector process in front of moto (or the
fault proxy), and what moto says runs."""

from tests.aws.conftest import CREDENTIALS, REGION

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
