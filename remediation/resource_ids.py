"""ARM resource ids: the one parser of ids that come from outside (events, queue messages, exports,
the command line, ARM's own answers), and the resource types the remediator works on.

An id is parsed strictly, segment by segment: what ARM would not accept, or what an HTTP client
would rewrite into another URL (an empty, ``.`` or ``..`` segment, percent-encoding, control
characters, a query or fragment), is refused with a message naming the segment; an id of a type
the caller did not ask for is refused too (``expected_type``, ``require``). Ids compare
case-insensitively, as ARM does.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass

# The characters a segment of a resource id may hold: ASCII letters and digits, underscore, period,
# hyphen and parentheses, and no name may end with '.' (learn.microsoft.com, "Naming rules and
# restrictions for Azure resources": scale sets, VMs, NICs, public IPs and resource groups refuse
# control characters, '%', '/', '?' and '#', and a trailing period). What ARM allows beyond that
# is accepted too, since a name refused here would make a whole list unreadable (a sweep, an
# autoscale list) and so switch the control off for every set beside it: Unicode letters and
# digits (a resource group's pattern is ^[-\w._()]+$) and a space inside a name (autoscale
# settings). Neither lets an id name another URL: the SDK sends them percent-encoded, and ARM
# decodes them back to the same name. (Ids compare by ``str.lower``; a Unicode name whose case
# ARM folds otherwise would compare unequal here, which only costs a second read.)
_NAME_CHARACTERS = frozenset(string.ascii_letters + string.digits + "_.()-")
_MAX_NAME_LENGTH = 200
_GUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
_NAMESPACE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)+$")
_MAX_ID_LENGTH = 1024
_FORM = "/subscriptions/{id}/resourceGroups/{name}/providers/{namespace}/{type}/{name}"


class InvalidResourceId(ValueError):
    """A string that is not an ARM resource id; the message says which part is wrong."""


class WrongResourceType(InvalidResourceId):
    """A resource id of another type than the operation acts on."""


def segment_fault(segment: str) -> str:
    """Why ``segment`` (one part of an id between slashes) cannot be in a resource id, or ''.

    Each of these would let the id name another URL than itself: an HTTP client removes ``.``
    and ``..`` segments (and an empty one changes what ``..`` removes), a server decodes
    ``%2e%2e`` and ``%2F``, ``?`` and ``#`` end the path, and a control character or a character
    outside ARM's names is never in an id ARM made."""
    if not segment:
        return "is empty"
    if segment in (".", ".."):
        return "is a relative path segment"
    for char in segment:
        fault = _character_fault(char, segment)
        if fault:
            return f"is not a valid name: it holds {fault}"
    if len(segment) > _MAX_NAME_LENGTH:
        return f"is not a valid name: it is longer than {_MAX_NAME_LENGTH} characters"
    if segment.endswith("."):
        return "is not a valid name: it ends with '.'"
    return ""


def _character_fault(char: str, segment: str) -> str:
    """What ``char`` is, if it cannot be in ``segment``; '' if it can."""
    if char == "%":
        return "'%' (percent-encoding)"
    if char in "?#":
        return f"{char!r}, which would end the URL's path"
    if unicodedata.category(char).startswith("C"):
        return f"the control character U+{ord(char):04X}"
    if char == " " and segment.strip(" ") == segment:
        return ""  # inside a name (autoscale settings may have spaces): sent as %20, read back as is
    if char.isspace():
        return f"the space character U+{ord(char):04X}"
    if not char.isascii():
        # What ARM's \w allows in resource group names (.NET: letters, marks, digits, connectors),
        # if its case maps one to one: ids compare by str.lower, and a character that lowers into
        # another's (the Kelvin sign into 'k', capital 'ẞ' into 'ß') would make two groups one here.
        category = unicodedata.category(char)
        if not (category[0] in "LN" or category in ("Mn", "Pc")):
            return f"the character U+{ord(char):04X}, not a letter or digit"
        lower, upper = char.lower(), char.upper()
        if len(lower) != 1 or lower.upper() != upper:
            return f"the character U+{ord(char):04X}, whose case does not map one to one"
    return "" if not char.isascii() or char in _NAME_CHARACTERS else repr(char)


def _segments(value: str) -> list[str]:
    """The segments of an id, each checked (``segment_fault``); the message names the first
    faulty one by its position (1 for ``subscriptions``) and value."""
    if not value.startswith("/"):
        raise InvalidResourceId(
            f"resource id {value!r} is not of the form {_FORM}: it does not start with '/'"
        )
    parts = value[1:].split("/")
    for position, part in enumerate(parts, start=1):
        fault = segment_fault(part)
        if fault:
            shown = f"segment {position}" if not part else f"segment {position} {part!r}"
            raise InvalidResourceId(f"resource id {value!r}: {shown} {fault}")
    return parts


def subscription_id(value: object) -> str:
    """A subscription id as given from outside (a command's argument): a GUID, or InvalidResourceId."""
    if not isinstance(value, str) or not _GUID.fullmatch(value):
        raise InvalidResourceId(f"subscription {value!r} is not a GUID")
    return value


MANAGEMENT_GROUP_PREFIX = "/providers/Microsoft.Management/managementGroups/"
_MANAGEMENT_GROUP = re.compile(r"^[A-Za-z0-9_().-]{1,90}$")  # Azure's rule for a group's name


def management_group_name(value: object) -> str:
    """A management group as given from outside: its name (``platform``) or its id
    (``/providers/Microsoft.Management/managementGroups/platform``); returns the name, or raises
    InvalidResourceId (1-90 letters, digits, ``-_().``, not ending in a period)."""
    if not isinstance(value, str):
        raise InvalidResourceId(f"management group {value!r} is not text")
    name = value
    if value.lower().startswith(MANAGEMENT_GROUP_PREFIX.lower()):
        name = value[len(MANAGEMENT_GROUP_PREFIX) :].rstrip("/")
    elif "/" in value:
        raise InvalidResourceId(
            f"management group {value!r} is neither a name nor {MANAGEMENT_GROUP_PREFIX}<name>"
        )
    if not _MANAGEMENT_GROUP.fullmatch(name) or name.endswith("."):
        raise InvalidResourceId(
            f"management group {value!r}: a name is 1-90 letters, digits, '-', '_', '(', ')' or '.', "
            "not ending in '.'"
        )
    return name


def resource_group_name(value: object) -> str:
    """A resource group's name to build a URL from: one valid segment, or InvalidResourceId."""
    fault = segment_fault(value) if isinstance(value, str) else "is not text"
    if fault:
        raise InvalidResourceId(f"resource group {value!r} {fault}")
    assert isinstance(value, str)
    return value


@dataclass(frozen=True, eq=False)
class ResourceId:
    """An ARM resource id such as ``/subscriptions/S/resourceGroups/RG/providers/NS/type/name``.

    Child resources (``.../networkInterfaces/nic/ipConfigurations/ipconfig1``) keep every
    type/name pair. Equality and hashing ignore case. The one parser of ids in the project: what
    it accepts is requested exactly as it is (no segment an HTTP client or server would collapse,
    decode or cut off), so a read or write by id goes to that resource's own URL.
    """

    value: str
    subscription: str
    resource_group: str
    namespace: str
    types: tuple[str, ...]
    names: tuple[str, ...]

    @classmethod
    def parse(cls, value: object, expected_type: str | None = None) -> ResourceId:
        """Parse an id; with ``expected_type``, refuse one of any other type (WrongResourceType)."""
        if not isinstance(value, str):
            raise InvalidResourceId(f"resource id must be a string, got {type(value).__name__}")
        if len(value) > _MAX_ID_LENGTH:
            raise InvalidResourceId(f"resource id is longer than {_MAX_ID_LENGTH} characters")
        parts = _segments(value)
        if len(parts) < 8 or len(parts) % 2 != 0:
            raise InvalidResourceId(f"resource id {value!r} is not of the form {_FORM}")
        for index, expected in ((0, "subscriptions"), (2, "resourcegroups"), (4, "providers")):
            if parts[index].lower() != expected:
                raise InvalidResourceId(f"resource id {value!r}: segment {index + 1} must be {expected!r}")
        subscription, group, namespace = parts[1], parts[3], parts[5]
        if not _GUID.fullmatch(subscription):
            raise InvalidResourceId(f"resource id {value!r}: subscription {subscription!r} is not a GUID")
        if not _NAMESPACE.match(namespace):
            raise InvalidResourceId(f"resource id {value!r}: provider namespace {namespace!r} is not valid")
        pairs = parts[6:]
        parsed = cls(value, subscription, group, namespace, tuple(pairs[0::2]), tuple(pairs[1::2]))
        return parsed.require(expected_type) if expected_type else parsed

    def require(self, *resource_types: str) -> ResourceId:
        """This id, if it is of one of ``resource_types``; else WrongResourceType naming both."""
        if any(self.is_type(resource_type) for resource_type in resource_types):
            return self
        raise WrongResourceType(
            f"resource id {self.value!r} is a {self.type}, not a {' or '.join(resource_types)}"
        )

    @property
    def type(self) -> str:
        """The full resource type, e.g. ``Microsoft.Network/networkInterfaces/ipConfigurations``."""
        return "/".join((self.namespace, *self.types))

    @property
    def name(self) -> str:
        return self.names[-1]

    @property
    def key(self) -> str:
        """The id in lower case: ARM ids are case-insensitive."""
        return self.value.lower()

    @property
    def parent(self) -> ResourceId | None:
        """The enclosing resource of a child resource; None for a top-level resource."""
        if len(self.types) == 1:
            return None
        prefix = f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/"
        pairs = [f"{t}/{n}" for t, n in zip(self.types[:-1], self.names[:-1], strict=True)]
        return ResourceId.parse(prefix + "/".join((self.namespace, *pairs)))

    def is_type(self, resource_type: str) -> bool:
        return self.type.lower() == resource_type.lower()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ResourceId) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __str__(self) -> str:
        return self.value


SCALE_SET_TYPE = "Microsoft.Compute/virtualMachineScaleSets"
VIRTUAL_MACHINE_TYPE = "Microsoft.Compute/virtualMachines"
UNIFORM_VM_TYPE = "Microsoft.Compute/virtualMachineScaleSets/virtualMachines"
NIC_TYPE = "Microsoft.Network/networkInterfaces"
PUBLIC_IP_TYPE = "Microsoft.Network/publicIPAddresses"
UNIFORM_NIC_TYPE = "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/networkInterfaces"
AUTOSCALE_SETTING_TYPE = "Microsoft.Insights/autoscalesettings"
