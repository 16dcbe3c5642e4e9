"""A fault proxy in front of moto's server: the failures of AWS that moto does not have.

A tornado server on a free loopback port, in a thread of its own, that
forwards every request to moto and, as a test tells it to:

* answers ``RequestLimitExceeded`` (503, EC2's XML error shape; ``Throttling``
  for Auto Scaling) to the next N calls (``throttle``);
* hides each new instance from DescribeInstances for some seconds after
  RunInstances answered it (``hide_new``), as AWS's eventual consistency does:
  asked by id, or terminated, it is ``InvalidInstanceID.NotFound``;
* forwards the next N RunInstances and drops their answers (``drop_run_answers``):
  the instances are launched, the caller never hears of it;
* holds RunInstances calls without forwarding them (``hold_runs``), or forwards
  them and holds the answers (``hold_run_answers``), until ``release``, which
  drops them: a connector killed meanwhile never saw an answer;
* refuses actions as credentials without the permission would (``deny``);
* enforces the ClientToken of RunInstances as AWS does and moto does not: the
  same token answers the same reservation (without launching), with other
  parameters ``IdempotentParameterMismatch``, and once every instance of it
  was terminated ``IdempotentInstanceTerminated``;
* launches MaxCount instances (moto launches MinCount), or as many as
  ``capacity`` has left, answering ``InsufficientInstanceCapacity`` when that is
  less than MinCount.

Counts of every action it saw (``calls``) let tests say how many AWS calls
something took.
"""

import asyncio
import collections
import re
import threading
import urllib.parse
import xml.etree.ElementTree as ET

import boto3
import tornado.httpclient
import tornado.iostream
import tornado.web

from tests.threaded import ThreadedServer

EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
_INSTANCE_ID = re.compile(r"<instanceId>(i-[0-9a-f]+)</instanceId>")
_HOP_HEADERS = {"host", "content-length", "connection", "transfer-encoding",
                "accept-encoding"}


def ec2_error(code, message):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>%s</Code>'
            '<Message>%s</Message></Error></Errors><RequestID>fault-proxy</RequestID>'
            '</Response>' % (code, message)).encode()


def query_error(code, message):
    return ('<?xml version="1.0"?>\n<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code>'
            '<Message>%s</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>'
            % (code, message)).encode()


class Faults:
    """What the proxy does to the calls; set from the test's thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.throttled = 0
        self.throttle_actions = None
        self.hide_seconds = 0.0
        self.dropped_answers = 0
        self.holding_runs = False
        self.holding_answers = False
        self.capacity = None
        #: Actions answered 403 UnauthorizedOperation (EC2) or AccessDenied (Auto Scaling).
        self.denied = set()
        #: Action -> how many the proxy received.
        self.calls = collections.Counter()
        #: Action -> how many it forwarded to moto.
        self.forwarded = collections.Counter()
        #: ClientToken -> (parameters, answer body, instance ids).
        self.tokens = {}
        #: instance id -> loop time until which DescribeInstances hides it.
        self.hidden = {}
        #: Calls held: (action, asyncio.Event) of each.
        self.held = []


class FaultProxy:
    """``start()``, then ``url``; ``stop()`` at the end."""

    def __init__(self, moto_url, *, region, credentials):
        self.moto_url = moto_url
        self.faults = Faults()
        self.ec2 = boto3.client("ec2", endpoint_url=moto_url, region_name=region,
                                aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
                                aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"])
        self.url = None
        self._server = None

    # -- what a test sets ------------------------------------------------------------

    def throttle(self, count, *, actions=None):
        """The next ``count`` calls (of ``actions`` only, if given) are throttled."""
        with self.faults.lock:
            self.faults.throttled = count
            self.faults.throttle_actions = set(actions) if actions else None

    def deny(self, *actions):
        """``actions`` are refused as to credentials without the permission."""
        self.faults.denied = set(actions)

    def hide_new(self, seconds):
        self.faults.hide_seconds = seconds

    def drop_run_answers(self, count):
        with self.faults.lock:
            self.faults.dropped_answers = count

    def hold_runs(self):
        self.faults.holding_runs = True

    def hold_run_answers(self):
        self.faults.holding_answers = True

    def set_capacity(self, instances):
        """At most ``instances`` more instances are launched (None: no limit)."""
        self.faults.capacity = instances

    def held(self):
        return len(self.faults.held)

    def release(self):
        """Stop holding; drop the calls and answers held (their connections close)."""
        self.faults.holding_runs = self.faults.holding_answers = False
        held, self.faults.held = self.faults.held, []
        for _, event in held:
            self._server.loop.call_soon_threadsafe(event.set)

    def calls(self, action):
        return self.faults.calls[action]

    def forwarded(self, action):
        return self.faults.forwarded[action]

    def reset(self):
        """Forget every fault and count (moto's state is reset apart)."""
        self.release()
        self.faults.__init__()

    # -- life cycle -------------------------------------------------------------------

    def start(self):
        self._server = ThreadedServer(
            lambda: tornado.web.Application([(r".*", _Forward, {"proxy": self})]),
            name="fault-proxy").start()
        self.url = self._server.url
        return self

    def stop(self):
        if self._server is None:
            return
        self.release()
        self._server.stop()
        self._server = None

    # -- what it does -----------------------------------------------------------------

    def terminated_all(self, instance_ids):
        """True if moto says every one of ``instance_ids`` is terminated."""
        reservations = self.ec2.describe_instances(InstanceIds=list(instance_ids))["Reservations"]
        states = [i["State"]["Name"] for r in reservations for i in r["Instances"]]
        return bool(states) and all(s in ("terminated", "shutting-down") for s in states)


class _Forward(tornado.web.RequestHandler):
    SUPPORTED_METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD")

    def initialize(self, proxy):
        self.proxy = proxy
        self.faults = proxy.faults

    def check_xsrf_cookie(self):
        return None

    async def post(self):
        await self.handle()

    async def get(self):
        await self.handle()

    async def handle(self):
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(
            self.request.body.decode("utf-8", "replace")).items()}
        form.update({k: v[-1].decode() for k, v in self.request.query_arguments.items()})
        action = form.get("Action", "")
        is_ec2 = "/ec2/" in self.request.headers.get("Authorization", "")
        self.faults.calls[action] += 1
        if self._throttled(action):
            body = ec2_error("RequestLimitExceeded", "Request limit exceeded.") if is_ec2 \
                else query_error("Throttling", "Rate exceeded")
            return self._answer(503 if is_ec2 else 400, body)
        if action in self.faults.denied:
            body = ec2_error("UnauthorizedOperation", "You are not authorized to perform this "
                             "operation.") if is_ec2 else query_error(
                "AccessDenied", "User is not authorized to perform: autoscaling:%s" % action)
            return self._answer(403, body)
        if action == "RunInstances":
            return await self._run_instances(form)
        if action in ("DescribeInstances", "TerminateInstances") and self.faults.hidden:
            return await self._hidden_from(action, form)
        code, body = await self._forward(action)
        self._answer(code, body)

    def _throttled(self, action):
        with self.faults.lock:
            if self.faults.throttled <= 0 or (self.faults.throttle_actions is not None and
                                              action not in self.faults.throttle_actions):
                return False
            self.faults.throttled -= 1
            return True

    async def _forward(self, action, body=None):
        self.faults.forwarded[action] += 1
        headers = {k: v for k, v in self.request.headers.get_all()
                   if k.lower() not in _HOP_HEADERS}
        request = tornado.httpclient.HTTPRequest(
            self.proxy.moto_url + self.request.uri, method=self.request.method,
            headers=headers, body=self.request.body if body is None else body,
            allow_nonstandard_methods=True, request_timeout=60)
        response = await tornado.httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        return response.code, response.body

    def _answer(self, code, body):
        self.set_status(code)
        self.set_header("Content-Type", "text/xml")
        self.finish(body)

    def _drop(self):
        """Close the connection without an answer."""
        self.request.connection.stream.close()
        self._finished = True

    async def _hold(self):
        event = asyncio.Event()
        self.faults.held.append(("RunInstances", event))
        await event.wait()

    async def _run_instances(self, form):
        token = form.get("ClientToken")
        parameters = {k: v for k, v in form.items() if k not in ("ClientToken",)}
        if token and token in self.faults.tokens:
            known, body, ids = self.faults.tokens[token]
            if known != parameters:
                return self._answer(400, ec2_error(
                    "IdempotentParameterMismatch", "Arguments on this idempotent request are "
                    "inconsistent with arguments used in previous request(s)."))
            terminated = await asyncio.get_running_loop().run_in_executor(
                None, self.proxy.terminated_all, ids)
            if terminated:
                return self._answer(400, ec2_error(
                    "IdempotentInstanceTerminated", "The client token %s has already been "
                    "used for instances that are now terminated." % token))
            return self._answer(200, body)
        if self.faults.holding_runs:
            await self._hold()
            return self._drop()
        wanted, least = int(form.get("MaxCount", "1")), int(form.get("MinCount", "1"))
        if self.faults.capacity is not None:
            wanted = min(wanted, self.faults.capacity)
            if wanted < least:
                return self._answer(500, ec2_error(
                    "InsufficientInstanceCapacity", "We currently do not have sufficient "
                    "capacity in the Availability Zone you requested."))
            self.faults.capacity -= wanted
        form = dict(form, MinCount=str(wanted), MaxCount=str(wanted))
        code, body = await self._forward("RunInstances", urllib.parse.urlencode(form).encode())
        if code != 200:
            return self._answer(code, body)
        ids = _INSTANCE_ID.findall(body.decode())
        if token:
            self.faults.tokens[token] = (parameters, body, ids)
        if self.faults.hide_seconds:
            until = asyncio.get_running_loop().time() + self.faults.hide_seconds
            self.faults.hidden.update((i, until) for i in ids)
        if self.faults.holding_answers:
            await self._hold()
            return self._drop()
        with self.faults.lock:
            drop = self.faults.dropped_answers > 0
            self.faults.dropped_answers -= drop
        if drop:
            return self._drop()
        self._answer(200, body)

    async def _hidden_from(self, action, form):
        """DescribeInstances without the hidden instances; asked by id (or terminated),
        they do not exist."""
        now = asyncio.get_running_loop().time()
        hidden = {i for i, until in self.faults.hidden.items() if until > now}
        asked = {v for k, v in form.items() if k.startswith("InstanceId.")}
        if asked & hidden:
            return self._answer(400, ec2_error(
                "InvalidInstanceID.NotFound", "The instance IDs '%s' do not exist"
                % ", ".join(sorted(asked & hidden))))
        code, body = await self._forward(action)
        if action != "DescribeInstances":
            return self._answer(code, body)
        if code != 200 or not hidden:
            return self._answer(code, body)
        ET.register_namespace("", EC2_NS)
        root = ET.fromstring(body)
        tag = "{%s}%%s" % EC2_NS
        for reservations in root.iter(tag % "reservationSet"):
            for reservation in list(reservations):
                for instances in reservation.iter(tag % "instancesSet"):
                    for instance in list(instances):
                        if instance.findtext(tag % "instanceId") in hidden:
                            instances.remove(instance)
                    if not len(instances):
                        reservations.remove(reservation)
        self._answer(200, ET.tostring(root, encoding="utf-8", xml_declaration=True))
