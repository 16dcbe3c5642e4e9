"""Service definitions of the AWS backend: EC2 instances, or one Auto Scaling group.

Two kinds, told apart by their fields:

* **instances**: the connector launches and terminates EC2 instances itself.
  ``imageId`` and ``instanceType`` (both required unless a ``launchTemplate``
  gives them), ``subnetId``, ``securityGroupIds``, ``keyName``, ``userData``,
  ``iamInstanceProfile`` (a name or an ARN), ``tags``, ``launchTemplate``
  (``{"id"|"name": ..., "version": "$Latest"|"$Default"|"N"}``), and
  ``terminationPolicy`` (``newest``, the default, or ``oldest``: which
  instances a scale-down terminates first).
* **Auto Scaling group**: ``autoScalingGroup: NAME``; scaling sets the group's
  desired capacity. ``terminationPolicy``: ``newest`` (default) or ``oldest``
  (the connector picks the instances a scale-in terminates, among the healthy
  and unprotected ones), or ``group`` (the group's own termination policies
  pick).

Everything that can be checked without AWS is checked here, with ``Invalid``
naming the field; what only AWS knows (does the AMI exist?) comes back from
the first launch as a 422 naming the field (``genisys.connector.aws.api``).
"""

import dataclasses
import re
from typing import Optional

from genisys.errors import Invalid
from genisys.model import ServiceName, body_name, check_fields, describe, type_name, validate_name

#: Tag keys under this prefix are the connector's own (which instances are whose).
RESERVED_TAG_PREFIX = "genisys:"
#: AWS refuses tag keys under this prefix.
AWS_TAG_PREFIX = "aws:"
#: AWS allows 50 tags a resource; the connector puts 3 of its own on each instance.
MAX_TAGS = 47
#: AWS's limit on user data, before base64.
MAX_USER_DATA_BYTES = 16 * 1024
#: Security groups one network interface may have at most (AWS's hard limit).
MAX_SECURITY_GROUPS = 16
#: What a scale-down terminates first.
INSTANCE_POLICIES = ("newest", "oldest")
GROUP_POLICIES = ("newest", "oldest", "group")

INSTANCE_FIELDS = ("imageId", "instanceType", "subnetId", "securityGroupIds", "keyName",
                   "userData", "iamInstanceProfile", "tags", "launchTemplate")

_ID = r"[0-9a-f]{8}(?:[0-9a-f]{9})?"
_AMI_RE = re.compile(r"ami-" + _ID)
_SUBNET_RE = re.compile(r"subnet-" + _ID)
_GROUP_ID_RE = re.compile(r"sg-" + _ID)
_TEMPLATE_ID_RE = re.compile(r"lt-" + _ID)
_TEMPLATE_NAME_RE = re.compile(r"[A-Za-z0-9().\-/_]{3,128}")
_TEMPLATE_VERSION_RE = re.compile(r"\$Latest|\$Default|[1-9][0-9]{0,17}")
# t3.micro, m7g.2xlarge, u-6tb1.metal, mac2-m2pro.metal
_INSTANCE_TYPE_RE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9-]+")
_GROUP_NAME_RE = re.compile(r"[^\x00-\x1f\x7f:]{1,255}")
_PROFILE_ARN_RE = re.compile(r"arn:aws[a-z-]*:iam::[0-9]{12}:instance-profile/[\w+=,.@/-]{1,128}")
_PROFILE_NAME_RE = re.compile(r"[\w+=,.@-]{1,128}")


@dataclasses.dataclass(frozen=True)
class LaunchTemplate:
    #: "id" or "name": which of the two ``value`` is.
    by: str
    value: str
    version: str

    def to_json(self):
        return {self.by: self.value, "version": self.version}

    def request(self):
        """The ``LaunchTemplate`` parameter of RunInstances."""
        key = "LaunchTemplateId" if self.by == "id" else "LaunchTemplateName"
        return {key: self.value, "Version": self.version}


@dataclasses.dataclass(frozen=True)
class AwsDefinition:
    """How the AWS backend runs the resources of ``name``: instances it launches
    itself, or the instances of the Auto Scaling group ``auto_scaling_group``."""

    name: ServiceName
    image_id: Optional[str] = None
    instance_type: Optional[str] = None
    subnet_id: Optional[str] = None
    security_group_ids: tuple = ()
    key_name: Optional[str] = None
    user_data: Optional[str] = None
    iam_instance_profile: Optional[str] = None
    #: (key, value) pairs, sorted.
    tags: tuple = ()
    launch_template: Optional[LaunchTemplate] = None
    auto_scaling_group: Optional[str] = None
    termination_policy: str = "newest"

    @property
    def kind(self):
        return "autoScalingGroup" if self.auto_scaling_group is not None else "instances"

    @classmethod
    def from_body(cls, body, *, name=None):
        """Validate a definition; ``name`` comes from the URL (or a map's key) when given."""
        name = body_name(body, name, required=(), optional=INSTANCE_FIELDS + (
            "autoScalingGroup", "terminationPolicy"))
        name = validate_name(name, "name")
        if "autoScalingGroup" in body:
            for field in INSTANCE_FIELDS:
                if field in body:
                    raise Invalid("an Auto Scaling group's instances are launched by the "
                                  "group: %s cannot be given with autoScalingGroup" % field,
                                  field=field)
            return cls(name=name,
                       auto_scaling_group=validate_group_name(body["autoScalingGroup"],
                                                              "autoScalingGroup"),
                       termination_policy=validate_policy(body.get("terminationPolicy"),
                                                          "terminationPolicy", GROUP_POLICIES))
        template = validate_launch_template(body.get("launchTemplate"), "launchTemplate")
        if template is None:
            for field in ("imageId", "instanceType"):
                if body.get(field) is None:
                    raise Invalid("is required (or a launchTemplate that gives it), or "
                                  "autoScalingGroup for a group's instances", field=field)
        return cls(
            name=name,
            image_id=_optional(body, "imageId", validate_image_id),
            instance_type=_optional(body, "instanceType", validate_instance_type),
            subnet_id=_optional(body, "subnetId", _pattern(_SUBNET_RE, "a subnet id like "
                                                                       "subnet-0abc1234")),
            security_group_ids=validate_security_groups(body.get("securityGroupIds"),
                                                        "securityGroupIds"),
            key_name=_optional(body, "keyName", validate_key_name),
            user_data=_optional(body, "userData", validate_user_data),
            iam_instance_profile=_optional(body, "iamInstanceProfile", validate_profile),
            tags=validate_tags(body.get("tags"), "tags"),
            launch_template=template,
            termination_policy=validate_policy(body.get("terminationPolicy"),
                                               "terminationPolicy", INSTANCE_POLICIES))

    def to_json(self):
        if self.auto_scaling_group is not None:
            return {"name": self.name, "autoScalingGroup": self.auto_scaling_group,
                    "terminationPolicy": self.termination_policy}
        body = {"name": self.name, "imageId": self.image_id, "instanceType": self.instance_type,
                "subnetId": self.subnet_id, "securityGroupIds": list(self.security_group_ids),
                "keyName": self.key_name, "userData": self.user_data,
                "iamInstanceProfile": self.iam_instance_profile, "tags": dict(self.tags),
                "launchTemplate": None if self.launch_template is None
                else self.launch_template.to_json(),
                "terminationPolicy": self.termination_policy}
        return body

    def run_request(self, *, count, token, own_tags):
        """The parameters of RunInstances for ``count`` instances of this definition,
        with the idempotency ``token`` and the connector's ``own_tags`` ({key: value})."""
        tags = [{"Key": k, "Value": v} for k, v in self.tags]
        tags += [{"Key": k, "Value": v} for k, v in sorted(own_tags.items())]
        request = {"MinCount": count, "MaxCount": count, "ClientToken": token,
                   "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}]}
        if self.launch_template is not None:
            request["LaunchTemplate"] = self.launch_template.request()
        for key, value in (("ImageId", self.image_id), ("InstanceType", self.instance_type),
                           ("SubnetId", self.subnet_id), ("KeyName", self.key_name),
                           ("UserData", self.user_data)):
            if value is not None:
                request[key] = value
        if self.security_group_ids:
            request["SecurityGroupIds"] = list(self.security_group_ids)
        if self.iam_instance_profile is not None:
            key = "Arn" if self.iam_instance_profile.startswith("arn:") else "Name"
            request["IamInstanceProfile"] = {key: self.iam_instance_profile}
        return request


def _optional(body, field, validate):
    value = body.get(field)
    return None if value is None else validate(value, field)


def _string(value, field, what):
    if not isinstance(value, str):
        raise Invalid("must be %s, got %s" % (what, type_name(value)), field=field)
    return value


def _pattern(regex, what):
    def validate(value, field):
        if not regex.fullmatch(_string(value, field, what)):
            raise Invalid("%s is not %s" % (describe(value), what), field=field)
        return value
    return validate


validate_image_id = _pattern(_AMI_RE, "an AMI id like ami-0abc1234 (ami- and 8 or 17 hex digits)")
validate_instance_type = _pattern(_INSTANCE_TYPE_RE, "an instance type like t3.micro")


def validate_security_groups(value, field):
    if value is None:
        return ()
    if not isinstance(value, list):
        raise Invalid("must be a list of security group ids like [\"sg-0abc1234\"], got %s"
                      % type_name(value), field=field)
    if len(value) > MAX_SECURITY_GROUPS:
        raise Invalid("has %d security groups, at most %d are allowed"
                      % (len(value), MAX_SECURITY_GROUPS), field=field)
    check = _pattern(_GROUP_ID_RE, "a security group id like sg-0abc1234")
    for i, item in enumerate(value):
        check(item, "%s[%d]" % (field, i))
        if item in value[:i]:
            raise Invalid("%s is given twice" % describe(item), field="%s[%d]" % (field, i))
    return tuple(value)


def validate_key_name(value, field):
    if not _string(value, field, "the name of an EC2 key pair").strip() or len(value) > 255 \
            or not value.isprintable():
        raise Invalid("%s is not the name of a key pair (1 to 255 printable characters)"
                      % describe(value), field=field)
    return value


def validate_user_data(value, field):
    size = len(_string(value, field, "a string (the script or cloud-init text)").encode())
    if size > MAX_USER_DATA_BYTES:
        raise Invalid("is %d bytes, AWS takes at most %d" % (size, MAX_USER_DATA_BYTES),
                      field=field)
    return value


def validate_profile(value, field):
    _string(value, field, "an instance profile name or ARN")
    if not (_PROFILE_ARN_RE.fullmatch(value) or _PROFILE_NAME_RE.fullmatch(value)):
        raise Invalid("%s is neither an instance profile name nor an instance profile ARN "
                      "(arn:aws:iam::123456789012:instance-profile/NAME)" % describe(value),
                      field=field)
    return value


def validate_tags(value, field):
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise Invalid("must be an object mapping tag keys to strings, got %s"
                      % type_name(value), field=field)
    if len(value) > MAX_TAGS:
        raise Invalid("has %d tags, at most %d are allowed (AWS takes 50, the connector adds "
                      "3)" % (len(value), MAX_TAGS), field=field)
    for key, text in value.items():
        if not key or len(key) > 128 or not key.isprintable():
            raise Invalid("%s is not a tag key (1 to 128 printable characters)" % describe(key),
                          field=field)
        for prefix, whose in ((RESERVED_TAG_PREFIX, "the connector's own"),
                              (AWS_TAG_PREFIX, "reserved by AWS")):
            if key.lower().startswith(prefix):
                raise Invalid("tag keys starting with %s are %s" % (prefix, whose),
                              field="%s.%s" % (field, key))
        if not isinstance(text, str):
            raise Invalid("must be a string, got %s" % type_name(text),
                          field="%s.%s" % (field, key))
        if len(text) > 256 or not text.isprintable():
            raise Invalid("is not a tag value (at most 256 printable characters)",
                          field="%s.%s" % (field, key))
    return tuple(sorted(value.items()))


def validate_launch_template(value, field):
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Invalid("must be an object like {\"name\": \"web\", \"version\": \"$Latest\"}, "
                      "got %s" % type_name(value), field=field)
    check_fields(value, required=("version",), optional=("id", "name"), where=field)
    if ("id" in value) == ("name" in value):
        raise Invalid("must name the template by id or by name (one of the two)", field=field)
    if "id" in value:
        by, text = "id", _pattern(_TEMPLATE_ID_RE, "a launch template id like lt-0abc1234")(
            value["id"], field + ".id")
    else:
        by, text = "name", _pattern(_TEMPLATE_NAME_RE, "a launch template name (3 to 128 of "
                                    "letters, digits and ( ) . - / _)")(value["name"],
                                                                       field + ".name")
    version = value["version"]
    if isinstance(version, int) and not isinstance(version, bool):
        version = str(version)
    _pattern(_TEMPLATE_VERSION_RE, "a version: $Latest, $Default or a number")(
        version, field + ".version")
    return LaunchTemplate(by=by, value=text, version=version)


def validate_group_name(value, field):
    return _pattern(_GROUP_NAME_RE, "the name of an Auto Scaling group")(value, field)


def validate_policy(value, field, policies):
    if value is None:
        return policies[0]
    if value not in policies:
        raise Invalid("must be one of %s, got %s" % (", ".join(policies), describe(value)),
                      field=field)
    return value
