"""AWS, reached through boto3 (which blocks) in worker threads, and its errors as genisys'.

One EC2 and one Auto Scaling client, made at start (which contacts nothing):
credentials come from boto3's standard chain (environment, shared files,
the instance's or container's role), are never passed, read or logged here;
botocore's own loggers are kept above DEBUG, where they would print request
headers. Calls retry in botocore's ``standard`` mode (throttling, 5xx,
connection errors; a retried RunInstances carries the same ClientToken).

``explain`` turns what is left after the retries into the errors the
connector answers with: throttling is ``Throttled`` (503 with Retry-After),
refused credentials ``BackendForbidden`` (403), an instance AWS does not show
yet ``BackendUnavailable`` (503: try again), a bad AMI or instance type
``StartFailed`` naming the definition's field (422), no capacity
``InsufficientCapacity`` (409), AWS unreachable ``BackendUnavailable`` (503).
"""

import asyncio
import concurrent.futures
import logging
import os

import boto3
import botocore.config
import botocore.exceptions

from genisys.errors import (
    BackendForbidden,
    BackendUnavailable,
    InsufficientCapacity,
    StartFailed,
    Throttled,
)

log = logging.getLogger(__name__)

#: Threads for calls to AWS: status and scale of several services at once.
CALL_THREADS = 8
#: Seconds to connect, and to wait for an answer, before botocore retries.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
#: Attempts of one call, the first included (botocore's standard mode's default).
MAX_ATTEMPTS = 3

THROTTLING = frozenset({"RequestLimitExceeded", "Throttling", "ThrottlingException",
                        "RequestThrottled", "RequestThrottledException",
                        "TooManyRequestsException", "SlowDown"})
UNAUTHORIZED = frozenset({"UnauthorizedOperation", "AuthFailure", "AccessDenied",
                          "AccessDeniedException", "UnrecognizedClientException",
                          "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken",
                          "OptInRequired", "Blocked"})
NO_CAPACITY = frozenset({"InsufficientInstanceCapacity", "InstanceLimitExceeded",
                         "VcpuLimitExceeded", "InsufficientCapacity",
                         "InsufficientHostCapacity", "InsufficientReservedInstanceCapacity"})
#: Error codes (or their prefix before the first ".") -> the definition's field at fault.
FIELD_OF_CODE = {
    "InvalidAMIID": "imageId",
    "InvalidInstanceType": "instanceType",
    "Unsupported": "instanceType",
    "InvalidSubnetID": "subnetId",
    "InvalidSubnet": "subnetId",
    "InvalidGroup": "securityGroupIds",
    "InvalidSecurityGroupID": "securityGroupIds",
    "InvalidKeyPair": "keyName",
    "InvalidUserData": "userData",
    "InvalidLaunchTemplateId": "launchTemplate",
    "InvalidLaunchTemplateName": "launchTemplate",
    "InvalidIamInstanceProfile": "iamInstanceProfile",
}
#: A parameter an InvalidParameterValue names -> the definition's field.
FIELD_OF_PARAMETER = {"instancetype": "instanceType", "imageid": "imageId",
                      "iaminstanceprofile": "iamInstanceProfile", "userdata": "userData",
                      "keyname": "keyName", "subnetid": "subnetId"}


def code_of(error):
    """The AWS error code of a ClientError ("" for anything else)."""
    if isinstance(error, botocore.exceptions.ClientError):
        return error.response.get("Error", {}).get("Code", "") or ""
    return ""


def message_of(error):
    if isinstance(error, botocore.exceptions.ClientError):
        return error.response.get("Error", {}).get("Message", "") or code_of(error)
    return str(error)


def is_definitive(error):
    """True if AWS answered ``error`` for the call itself (it did not happen), False if
    the call may have happened anyway (no answer, throttled after retries, AWS's 5xx)."""
    if not isinstance(error, botocore.exceptions.ClientError):
        return False
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
    return code_of(error) in NO_CAPACITY or (code_of(error) not in THROTTLING and status < 500)


def field_of(error):
    """The definition's field an AWS refusal of a launch is about, or None."""
    code = code_of(error)
    field = FIELD_OF_CODE.get(code) or FIELD_OF_CODE.get(code.split(".")[0])
    if field is None and code in ("InvalidParameterValue", "InvalidParameter",
                                  "InvalidParameterCombination", "ValidationError"):
        message = message_of(error).lower().replace(" ", "")
        for parameter, name in FIELD_OF_PARAMETER.items():
            if parameter in message:
                return name
    return field


def explain(error, *, doing, retry_after):
    """The genisys error for ``error``, raised by boto3 while ``doing`` (words: "launching
    3 instances of web")."""
    code = code_of(error)
    text = message_of(error)
    if code in THROTTLING:
        return Throttled("AWS is throttling the connector's calls (%s) while %s: try again in "
                         "%gs" % (code, doing, retry_after), retry_after=retry_after)
    if code in UNAUTHORIZED:
        return BackendForbidden("AWS refused the connector's credentials while %s: %s: %s (see the "
                         "IAM policy in the docs)" % (doing, code, text))
    if code.startswith("InvalidInstanceID.NotFound"):
        return BackendUnavailable("AWS does not show the instance(s) yet (DescribeInstances is "
                                  "eventually consistent) while %s: %s: %s"
                                  % (doing, code, text))
    if code in NO_CAPACITY:
        return InsufficientCapacity("AWS has no capacity while %s: %s: %s" % (doing, code, text),
                                    field="number")
    if isinstance(error, botocore.exceptions.ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
        if status >= 500:
            return BackendUnavailable("AWS failed while %s: %s: %s" % (doing, code, text))
        return StartFailed("AWS refused %s: %s: %s" % (doing, code, text), field=field_of(error))
    if isinstance(error, botocore.exceptions.NoCredentialsError):
        return BackendForbidden("no AWS credentials (the standard chain found none: environment, "
                         "~/.aws, or the instance's role) while %s" % doing)
    if isinstance(error, (botocore.exceptions.BotoCoreError, OSError)):
        return BackendUnavailable("cannot reach AWS while %s: %s" % (doing, error))
    return error


class Aws:
    """``call(service, operation, **params)`` in a worker thread; ``close()`` when done."""

    def __init__(self, *, region=None, endpoint_url=None):
        self.region = region
        self.endpoint_url = endpoint_url
        self._clients = {}
        self._threads = concurrent.futures.ThreadPoolExecutor(
            CALL_THREADS, thread_name_prefix="aws-call")

    def open(self):
        """Make the clients (the standard credential chain is read on the first call).
        ValueError if the region is missing or not a region."""
        for name in ("botocore", "boto3", "urllib3"):
            logger = logging.getLogger(name)
            logger.setLevel(max(logger.getEffectiveLevel(), logging.INFO))
        config = botocore.config.Config(
            retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
            connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
            user_agent_extra="genisys-connector")
        session = boto3.session.Session()
        # AWS_REGION is what the newer SDKs read; this botocore reads AWS_DEFAULT_REGION.
        region = self.region or os.environ.get("AWS_REGION") or session.region_name
        if not region:
            raise ValueError("no AWS region: give --region, or set AWS_REGION or "
                             "AWS_DEFAULT_REGION")
        self.region = region
        try:
            for service in ("ec2", "autoscaling"):
                self._clients[service] = session.client(service, region_name=region,
                                                        endpoint_url=self.endpoint_url,
                                                        config=config)
        except (ValueError, botocore.exceptions.BotoCoreError) as e:
            raise ValueError("cannot use AWS region %s: %s" % (region, e)) from e

    async def call(self, service, operation, **params):
        client = self._clients[service]
        method = getattr(client, operation)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, lambda: method(**params))

    async def pages(self, service, operation, key, **params):
        """Every item under ``key`` of every page of ``operation``."""
        def collect():
            paginator = self._clients[service].get_paginator(operation)
            return [item for page in paginator.paginate(**params) for item in page[key]]
        return await asyncio.get_running_loop().run_in_executor(self._threads, collect)

    def close(self):
        self._threads.shutdown(wait=False)
