"""The things that flow between the layers: observed resources, findings, actions. (Resource ids
and their parser are in ``resource_ids``.)

Everything here is a frozen dataclass or an enum, built from ARM's wire format (the JSON the
REST API returns) by the ``from_arm`` constructors. The ARM gateway hands these out instead of
SDK models, so an SDK upgrade that moves model fields (as azure-mgmt-compute 38 and
azure-mgmt-network 31 did) touches one file, and the what-if planner can read exported ARM JSON
with no SDK at all. Resource ids compare case-insensitively, as ARM does.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from remediation.resource_ids import UNIFORM_VM_TYPE, ResourceId

JsonDict = dict[str, Any]


class Mode(enum.StrEnum):
    """What the remediator does about a violating instance of a restricted set."""

    AUDIT = "audit"
    STRIP = "strip"
    EVICT = "evict"
    SCALE_TO_ZERO = "scale-to-zero"


class Origin(enum.StrEnum):
    """Who created an instance: the scale set itself, a person (attached by hand), or unclear."""

    SCALE_SET = "scale-set"
    HAND_ADDED = "hand-added"
    UNKNOWN = "unknown"


class ActionKind(enum.StrEnum):
    DETACH_PUBLIC_IP = "detach-public-ip"  # PUT the NIC without it (If-Match)
    DELETE_PUBLIC_IP = "delete-public-ip"  # after the detach: ARM refuses to delete an attached IP
    DELETE_VM = "delete-vm"  # evict (a Flexible set's VM, or a Uniform set's instance)
    SET_CAPACITY_ZERO = "set-capacity-zero"  # scale-to-zero (If-Match)
    # Uniform sets: instances' NICs come from the set's model, so strip changes the model...
    DISABLE_AUTOSCALE = "disable-autoscale"  # before scale-to-zero, so autoscale does not undo it
    REMOVE_PUBLIC_IP_FROM_MODEL = "remove-public-ip-from-model"  # (If-Match)
    # ...and brings the violating instances up to it (their NICs are made again without one).
    UPGRADE_INSTANCES = "upgrade-instances"
    # A NIC an earlier update of ours left Failed: PUT again as it is (Network's documented remedy).
    REPAIR_NIC = "repair-nic"


# Actions on the scale set itself rather than on one instance.
SET_LEVEL_ACTIONS = frozenset(
    {
        ActionKind.DISABLE_AUTOSCALE,
        ActionKind.SET_CAPACITY_ZERO,
        ActionKind.REMOVE_PUBLIC_IP_FROM_MODEL,
        ActionKind.UPGRADE_INSTANCES,
    }
)


class RecordKind(enum.StrEnum):
    """The kinds of audit record. Records are appended, never updated."""

    RECEIVED = "received"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    DECISION = "decision"
    INTENT = "intent"
    OUTCOME = "outcome"
    VERIFIED = "verified"
    ERROR = "error"


class Result(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CONFLICT = "conflict"  # 412: the resource changed since it was read; re-read and re-planned
    SKIPPED = "skipped"  # not written, or nothing left for it to change (the record says which)
    UNKNOWN = "unknown"  # ARM's answers do not say whether it applied; a later reconcile resolves it


@dataclass(frozen=True)
class Caller:
    """Who made the ARM request, from the event's claims (often empty in real events)."""

    app_id: str = ""
    name: str = ""
    object_id: str = ""
    # A user's token (``idtyp`` user, or a ``upn`` or ``scp`` claim), not an application's.
    user: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        """Every part the event carried, e.g. ``Jane Doe; appid 1950a258-...; oid 8d2c...``."""
        parts = [
            self.name,
            *(
                f"{label} {value}"
                for label, value in (("appid", self.app_id), ("oid", self.object_id))
                if value
            ),
        ]
        return "; ".join(part for part in parts if part) or "unknown"

    def is_principal(self, other: Caller) -> bool:
        """Whether both name the same principal: by object id where both carry one, else by
        application id; never when neither is known."""
        if self.object_id and other.object_id:
            return self.object_id.lower() == other.object_id.lower()
        return bool(self.app_id and other.app_id) and self.app_id.lower() == other.app_id.lower()


@dataclass(frozen=True)
class Trigger:
    """A validated resource event: only says "look at this resource now" (level-triggered)."""

    event_id: str
    event_type: str
    operation: str
    resource_id: ResourceId
    subscription_id: str
    correlation_id: str
    event_time: datetime | None
    caller: Caller
    schema: str  # "eventgrid" or "cloudevents"


@dataclass(frozen=True)
class Recheck:
    """A work-queue message: look at this set (for an event, a sweep or a replay; again, while its
    instances are still being created; or once another reconcile that held it has ended)."""

    scale_set: ResourceId
    attempt: int  # 1 for the first re-check of a growing set; 0 otherwise
    reason: str = ""
    # A way back to a set another reconcile held: only if the set is still marked (not yet looked at).
    if_marked: bool = False
    origin: str = ""  # the event, sweep or replay that asked (its records carry this id)
    dry_run: bool = False  # a dry-run replay's look: decide and record, write nothing
    follow_up: int = 0  # how many reconciles of this look ran out of time before this one
    watch: int = 0  # how many looks at this growing set came before this one, a few seconds apart

    def to_message(self) -> str:
        message: dict[str, object] = {
            "scale_set": self.scale_set.value,
            "attempt": self.attempt,
            "reason": self.reason,
        }
        for name, value in (
            ("if_marked", self.if_marked),
            ("origin", self.origin),
            ("dry_run", self.dry_run),
            ("follow_up", self.follow_up),
            ("watch", self.watch),
        ):
            if value:
                message[name] = value
        return json.dumps(message)


@dataclass(frozen=True)
class QueuedEvent:
    """A work-queue message: run this event through intake on a queue worker, with ARM's full
    retries (a replay, or an event whose owning set Event Grid's delivery could not resolve in time).

    ``event_id``: the id its records carry (the replay's id, or the event's own); ``replay_of``:
    the original event's id when this is a replay. ``event`` or ``archive`` (a blob of the event
    archive holding it, for an event too big for a queue message) names the event."""

    event_id: str
    event: object = None
    archive: str = ""
    replay_of: str = ""
    note: str = ""
    dry_run: bool = False

    def to_message(self) -> str:
        message: dict[str, object] = {"event_id": self.event_id}
        if self.archive:
            message["archive"] = self.archive
        else:
            message["event"] = self.event
        for name, value in (("replay_of", self.replay_of), ("note", self.note), ("dry_run", self.dry_run)):
            if value:
                message[name] = value
        return json.dumps(message, default=str)


@dataclass(frozen=True)
class Rejection:
    """An event we will not act on, and why: recorded, never retried, never a write."""

    event_id: str
    reason: str
    event_type: str = ""


def _props(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    properties = doc.get("properties")
    return properties if isinstance(properties, Mapping) else {}


def _optional_id(value: object) -> ResourceId | None:
    if isinstance(value, Mapping):
        value = value.get("id")
    if not value:
        return None
    return ResourceId.parse(value)


def _tags(doc: Mapping[str, Any]) -> dict[str, str]:
    tags = doc.get("tags")
    if not isinstance(tags, Mapping):
        return {}
    return {str(k): str(v) for k, v in tags.items()}


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


NicConfigurationNames = tuple[tuple[str, tuple[str, ...]], ...]


def nic_configuration_names(configurations: object) -> NicConfigurationNames:
    """Each NIC configuration's name with its ipConfigurations' names, lower case and sorted: what
    a VM the set made from its profile shares with that profile, whatever else differs."""
    names: list[tuple[str, tuple[str, ...]]] = []
    for configuration in configurations if isinstance(configurations, list) else []:
        if not isinstance(configuration, Mapping):
            continue
        ip_configurations = _props(configuration).get("ipConfigurations") or []
        ip_names = sorted(
            str(ip.get("name") or "").lower() for ip in ip_configurations if isinstance(ip, Mapping)
        )
        names.append((str(configuration.get("name") or "").lower(), tuple(ip_names)))
    return tuple(sorted(names))


def tag_value(tags: Mapping[str, str], key: str) -> str | None:
    """Tag keys are case-insensitive in Azure."""
    wanted = key.lower()
    for name, value in tags.items():
        if name.lower() == wanted:
            return value
    return None


@dataclass(frozen=True)
class ScaleSet:
    id: ResourceId
    location: str
    orchestration_mode: str
    capacity: int
    computer_name_prefix: str
    tags: Mapping[str, str]
    etag: str
    provisioning_state: str
    upgrade_mode: str  # Manual, Automatic or Rolling (how a model change reaches instances)
    # The wire document as read: a capacity change is a PUT of the whole resource.
    raw: Mapping[str, Any] = field(compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.id.name

    @property
    def is_flexible(self) -> bool:
        return self.orchestration_mode.lower() == "flexible"

    @classmethod
    def from_arm(cls, doc: Mapping[str, Any]) -> ScaleSet:
        props = _props(doc)
        sku = doc.get("sku") if isinstance(doc.get("sku"), Mapping) else {}
        profile = props.get("virtualMachineProfile") or {}
        os_profile = profile.get("osProfile") or {} if isinstance(profile, Mapping) else {}
        return cls(
            id=ResourceId.parse(doc.get("id")),
            location=str(doc.get("location", "")),
            orchestration_mode=str(props.get("orchestrationMode") or "Uniform"),
            capacity=int(sku.get("capacity") or 0) if isinstance(sku, Mapping) else 0,
            computer_name_prefix=str(os_profile.get("computerNamePrefix") or ""),
            tags=_tags(doc),
            etag=str(doc.get("etag") or ""),
            provisioning_state=str(props.get("provisioningState") or ""),
            upgrade_mode=str((props.get("upgradePolicy") or {}).get("mode") or "Manual"),
            raw=doc,
        )

    @property
    def nic_configurations(self) -> list[Any]:
        """The NIC configurations of the set's model, as read (wire JSON)."""
        profile = _props(self.raw).get("virtualMachineProfile") or {}
        return list((profile.get("networkProfile") or {}).get("networkInterfaceConfigurations") or [])

    @property
    def nic_configuration_names(self) -> NicConfigurationNames:
        return nic_configuration_names(self.nic_configurations)

    @property
    def model_has_public_ip(self) -> bool:
        """Whether the set's model gives each instance a public IP."""
        return any(
            _props(ip).get("publicIPAddressConfiguration")
            for nic in self.nic_configurations
            for ip in _props(nic).get("ipConfigurations") or []
        )


@dataclass(frozen=True)
class VirtualMachine:
    id: ResourceId
    scale_set_id: ResourceId | None
    nic_ids: tuple[ResourceId, ...]
    computer_name: str
    has_nic_configurations: bool
    network_api_version: str
    time_created: datetime | None
    provisioning_state: str
    tags: Mapping[str, str]
    # The names of the NIC configurations Compute made its NICs from (Flexible instances only).
    nic_configuration_names: NicConfigurationNames = ()

    @property
    def name(self) -> str:
        return self.id.name

    @property
    def is_uniform_instance(self) -> bool:
        return self.id.is_type(UNIFORM_VM_TYPE)

    @classmethod
    def from_arm(cls, doc: Mapping[str, Any]) -> VirtualMachine:
        props = _props(doc)
        network = props.get("networkProfile") or {}
        os_profile = props.get("osProfile") or {}
        nic_refs = network.get("networkInterfaces") or []
        vm_id = ResourceId.parse(doc.get("id"))
        # A Uniform set's instance lives under its set and names it only through its id.
        owner = _optional_id(props.get("virtualMachineScaleSet")) or (
            vm_id.parent if vm_id.is_type(UNIFORM_VM_TYPE) else None
        )
        return cls(
            id=vm_id,
            scale_set_id=owner,
            nic_ids=tuple(ResourceId.parse(ref.get("id")) for ref in nic_refs if isinstance(ref, Mapping)),
            computer_name=str(os_profile.get("computerName") or ""),
            has_nic_configurations=bool(network.get("networkInterfaceConfigurations")),
            network_api_version=str(network.get("networkApiVersion") or ""),
            time_created=_time(props.get("timeCreated")),
            provisioning_state=str(props.get("provisioningState") or ""),
            tags=_tags(doc),
            nic_configuration_names=nic_configuration_names(network.get("networkInterfaceConfigurations")),
        )


@dataclass(frozen=True)
class IpConfiguration:
    name: str
    public_ip_id: ResourceId | None


@dataclass(frozen=True)
class NetworkInterface:
    id: ResourceId
    vm_id: ResourceId | None
    ip_configurations: tuple[IpConfiguration, ...]
    tags: Mapping[str, str]
    etag: str
    provisioning_state: str
    # The wire document as read: a NIC update is a PUT of the whole resource.
    raw: Mapping[str, Any] = field(compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.id.name

    @property
    def public_ip_ids(self) -> tuple[ResourceId, ...]:
        return tuple(c.public_ip_id for c in self.ip_configurations if c.public_ip_id is not None)

    @classmethod
    def from_arm(cls, doc: Mapping[str, Any]) -> NetworkInterface:
        props = _props(doc)
        configurations = []
        for config in props.get("ipConfigurations") or []:
            if isinstance(config, Mapping):
                config_props = _props(config)
                configurations.append(
                    IpConfiguration(
                        name=str(config.get("name") or ""),
                        public_ip_id=_optional_id(config_props.get("publicIPAddress")),
                    )
                )
        return cls(
            id=ResourceId.parse(doc.get("id")),
            vm_id=_optional_id(props.get("virtualMachine")),
            ip_configurations=tuple(configurations),
            tags=_tags(doc),
            etag=str(doc.get("etag") or ""),
            provisioning_state=str(props.get("provisioningState") or ""),
            raw=doc,
        )


@dataclass(frozen=True)
class PublicIp:
    id: ResourceId
    ip_configuration_id: ResourceId | None
    ip_address: str
    provisioning_state: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    nat_gateway_id: ResourceId | None = None  # a NAT gateway holds it (no ipConfiguration then)

    @classmethod
    def from_arm(cls, doc: Mapping[str, Any]) -> PublicIp:
        props = _props(doc)
        return cls(
            id=ResourceId.parse(doc.get("id")),
            ip_configuration_id=_optional_id(props.get("ipConfiguration")),
            ip_address=str(props.get("ipAddress") or ""),
            provisioning_state=str(props.get("provisioningState") or ""),
            tags=_tags(doc),
            nat_gateway_id=_optional_id(props.get("natGateway")),
        )

    @property
    def in_use(self) -> bool:
        """Held by a NIC's ipConfiguration or a NAT gateway: not free to delete."""
        return self.ip_configuration_id is not None or self.nat_gateway_id is not None


@dataclass(frozen=True)
class AutoscaleSetting:
    """A Microsoft.Insights autoscale setting, and the resource it scales."""

    id: ResourceId
    enabled: bool
    target: ResourceId | None
    raw: Mapping[str, Any] = field(compare=False, repr=False)
    minimum: int = 0  # the highest of its profiles' minimum capacities: what it keeps at least

    @classmethod
    def from_arm(cls, doc: Mapping[str, Any]) -> AutoscaleSetting:
        props = _props(doc)
        minimums = [
            int(str(capacity.get("minimum")).strip())
            for profile in props.get("profiles") or []
            if isinstance(profile, Mapping)
            and isinstance(capacity := profile.get("capacity"), Mapping)
            and str(capacity.get("minimum", "")).strip().isdigit()  # ARM sends the counts as strings
        ]
        return cls(
            id=ResourceId.parse(doc.get("id")),
            enabled=bool(props.get("enabled")),
            target=_optional_id(props.get("targetResourceUri")),
            raw=doc,
            minimum=max(minimums, default=0),
        )


@dataclass(frozen=True)
class Instance:
    """One VM of a scale set with the NICs it uses."""

    vm: VirtualMachine
    nics: tuple[NetworkInterface, ...]


@dataclass(frozen=True)
class ObservedSet:
    """Live state of one scale set, read from ARM at ``observed_at``."""

    scale_set: ScaleSet
    instances: tuple[Instance, ...]
    observed_at: datetime
    autoscale: tuple[AutoscaleSetting, ...] = ()  # read only when scale-to-zero may need them


@dataclass(frozen=True)
class Finding:
    """An instance of a restricted set that carries a public IP, and what we know of its origin."""

    scale_set: ScaleSet
    instance: VirtualMachine
    nic: NetworkInterface
    public_ip_ids: tuple[ResourceId, ...]
    origin: Origin
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class Action:
    """One write to ARM that the plan asks for, with the finding that justifies it."""

    kind: ActionKind
    finding: Finding
    target: ResourceId
    # For the PUTs (detach, capacity): the document to PUT, and the etag it must still carry.
    body: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    if_match: str = ""


@dataclass(frozen=True)
class Plan:
    """The pure planner's answer for one set: what is wrong, and what to write (maybe nothing)."""

    scale_set: ScaleSet
    mode: Mode
    findings: tuple[Finding, ...]
    actions: tuple[Action, ...]
    skipped: tuple[tuple[Finding, str], ...]  # findings we leave alone, each with the reason
    notes: tuple[str, ...] = ()  # set-level facts worth a record (e.g. what scale-to-zero would delete)

    def per_finding(self) -> list[tuple[Finding, str, str]]:
        """Each finding with its planned writes (``detach-public-ip+delete-public-ip``, or ``none``)
        and, when it is left alone, why."""
        planned: dict[int, list[str]] = {}
        for action in self.actions:
            planned.setdefault(id(action.finding), []).append(action.kind.value)
        skipped = {id(finding): why for finding, why in self.skipped}
        return [
            (finding, "+".join(planned.get(id(finding), ["none"])), skipped.get(id(finding), ""))
            for finding in self.findings
        ]
