"""The things that flow between the layers: triggers, work messages, observed sets, findings,
actions. (Resource ids and their parser are in ``resource_ids``; the resources as ARM shows them,
built from its wire format, in ``resources``.)

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

from remediation.resource_ids import ResourceId
from remediation.resources import AutoscaleSetting, NetworkInterface, ScaleSet, VirtualMachine

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
