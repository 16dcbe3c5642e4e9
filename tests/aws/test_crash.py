"""An aws connector SIGKILLed in the middle of a launch, then restarted on the same state
directory: exactly the desired number of instances run, whether AWS saw the call or not.

The fault proxy holds the RunInstances call (the connector wrote the launch and its
ClientToken, and is killed before AWS sees the call), or forwards it and holds the
answer (killed after AWS launched). The restarted connector replays the launch with the
same token: AWS launches it now, or answers the reservation it made.
"""

import pytest

from tests.aws.common import define, instances, scale, scale_in_background, start_aws, status
from tests.support import wait_for


@pytest.mark.parametrize("moment", ["before-the-call", "after-the-call"])
def test_a_connector_killed_during_a_launch_launches_it_exactly_once(
        start_connector, proxy, ec2, image_id, moment):
    connector = start_aws(start_connector, proxy.url)
    define(connector, "web", image_id)
    assert scale(connector, "web", 1).json()["running_resources"] == 1
    if moment == "before-the-call":
        proxy.hold_runs()
    else:
        proxy.hold_run_answers()
    call = scale_in_background(connector, "web", 4)
    wait_for(lambda: proxy.held() == 1, timeout=20, message="RunInstances held")
    # The launch, with its token, is on disk before the call.
    [launch] = connector.state()["launches"]
    assert (launch["service"], launch["count"], launch["instances"]) == ("web", 3, None)
    assert launch["request"]["ClientToken"] == launch["token"]
    connector.kill()
    proxy.release()
    call.join()
    assert len(instances(ec2, "web")) == (1 if moment == "before-the-call" else 4)

    restarted = start_aws(start_connector, proxy.url, state_dir=connector.state_dir)
    # While the launch is unresolved it counts at what it asked for: genisys orders nothing
    # more meanwhile.
    assert status(restarted, "web").json() == {"running_resources": 4}
    wait_for(lambda: restarted.state()["launches"] == [] or
             all(entry["instances"] for entry in restarted.state()["launches"]), timeout=20,
             message="the launch replayed")
    assert scale(restarted, "web", 4).json() == {"number": 4, "running_resources": 4}
    assert len(instances(ec2, "web")) == 4
    # AWS saw the launch once: forwarded once by the proxy, whichever moment it was.
    assert proxy.forwarded("RunInstances") == 2  # the first instance's, and this one
    tokens = {tag["Value"] for r in ec2.describe_instances(InstanceIds=instances(ec2, "web"))
              ["Reservations"] for i in r["Instances"] for tag in i["Tags"]
              if tag["Key"] == "genisys:launch"}
    assert launch["token"] in tokens and len(tokens) == 2
