"""The audit record: its fields, its Table storage form, and the keys it is found by. Pure.

Reviewers ask four questions of the log: what happened in the last N hours, what happened to
this scale set, what happened for this event (or correlation id), and what failed. Table storage
answers a query fast only within a partition (and within it, a RowKey range), so each record is
stored once per question it answers:

    partition        RowKey                   holds
    h-YYYYMMDDHH     <time>-<id>              every record, by UTC hour
    f-YYYYMMDDHH     <time>-<id>              failed records (kind error, or result failed), by hour
    w-YYYYMMDD       <time>-<id>              intents and outcomes (the ARM writes), by UTC day
    s-<bucket>       <hash of set>|<time>-<id>  records about a scale set
    e-<bucket>       <event id>|<time>-<id>   records of one event (and ``<event id>|~handled``)
    c-<bucket>       <hash of id>|<time>-<id> records that carry a correlation id

so every partition reads back in time order, and one set's, event's or correlation's records are a
RowKey range of their bucket. The by-set, by-event and by-correlation copies share
``INDEX_BUCKETS`` partitions each, not one partition per key: the records a process stores at the
same moment (concurrent events, a reconcile's parallel writes) then go as a few entity-group
transactions (``group_commit``) instead of two or three per event, whose fixed cost (a MIME body,
its parsing) is several times an entity's.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from remediation import __version__
from remediation.model import RecordKind, Result

HANDLED_ROW = "~handled"  # sorts after every record row of an event's range
# Each index is spread over this many partitions. Azure Table serves about 2,000 entities per
# second per partition; the hourly one, which every record enters, bounds the log at that rate
# (about 1,000 events a second, two records each) whatever this is, and at that rate one bucket
# per index takes no more than the hourly partition does. More buckets would only split a wave's
# records into more transactions.
INDEX_BUCKETS = 1
_KEY_UNSAFE = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class AuditRecord:
    """One line of the audit log. Empty strings mean "not applicable"."""

    kind: RecordKind
    event_id: str = ""
    correlation_id: str = ""
    event_type: str = ""
    operation: str = ""
    caller: str = ""
    resource: str = ""  # the resource the event named
    target: str = ""  # on intents and outcomes: the resource the ARM write goes to
    scale_set: str = ""
    instance: str = ""
    nic: str = ""
    public_ip: str = ""
    mode: str = ""
    origin: str = ""
    evidence: tuple[str, ...] = ()
    action: str = ""
    result: str = ""
    reason: str = ""
    error: str = ""
    state_before: str = ""
    state_after: str = ""
    exposed_since: str = ""  # when the instance was created (its public IP's exposure began)
    arm_request_id: str = ""
    intent_id: str = ""  # on an outcome: the intent record it closes
    duration_ms: int = 0
    dry_run: bool = False
    replay_of: str = ""
    archive: str = ""  # on a received record: where the raw event is archived
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    record_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    version: str = __version__

    @property
    def failed(self) -> bool:
        return self.kind is RecordKind.ERROR or self.result == Result.FAILED.value

    @property
    def row_key(self) -> str:
        return f"{self.time.strftime('%Y%m%dT%H%M%S.%fZ')}-{self.record_id}"

    def keys(self) -> list[Key]:
        """Every (partition, RowKey prefix) this record is stored under (see the module docstring)."""
        hour = hour_key(self.time)
        keys = [Key(f"h-{hour}")]
        if self.scale_set:
            keys.append(scale_set_key(self.scale_set))
        if self.event_id:
            keys.append(event_key(self.event_id))
        if self.correlation_id:
            keys.append(correlation_key(self.correlation_id))
        if self.failed:
            keys.append(Key(f"f-{hour}"))
        if self.kind in (RecordKind.INTENT, RecordKind.OUTCOME):
            keys.append(Key(f"w-{hour[:8]}"))
        return keys

    def partitions(self) -> list[str]:
        """Every partition this record is stored in."""
        return [key.partition for key in self.keys()]

    def to_entities(self) -> list[dict[str, Any]]:
        """The record as Table entities, one per partition it is stored in."""
        base = self.as_json()
        base["evidence"] = json.dumps(base["evidence"])
        row = self.row_key
        return [{"PartitionKey": key.partition, "RowKey": key.prefix + row, **base} for key in self.keys()]

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any]) -> AuditRecord:
        values: dict[str, Any] = {}
        for spec in fields(cls):
            if spec.name not in entity:
                continue
            value = entity[spec.name]
            if spec.name == "evidence":
                value = tuple(json.loads(value or "[]"))
            elif spec.name == "time":
                value = datetime.fromisoformat(value)
            elif spec.name == "kind":
                value = RecordKind(value)
            values[spec.name] = value
        return cls(**values)

    def as_json(self) -> dict[str, Any]:
        # Field by field, not dataclasses.asdict: this runs for every record and its copies, and
        # asdict deep-copies every value.
        data = {spec.name: getattr(self, spec.name) for spec in _FIELDS}
        data["kind"] = self.kind.value
        data["time"] = self.time.isoformat()
        data["evidence"] = list(self.evidence)
        return data


_FIELDS = fields(AuditRecord)


def hour_key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d%H")


def _digest(value: str) -> str:
    return hashlib.sha256(value.lower().encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Key:
    """Where a record's copy is stored: its partition, and what its RowKey starts with."""

    partition: str
    prefix: str = ""


def _indexed(index: str, key: str) -> Key:
    bucket = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % INDEX_BUCKETS
    return Key(f"{index}-{bucket}", f"{key}|")


def scale_set_key(scale_set_id: str) -> Key:
    return _indexed("s", _digest(scale_set_id.rstrip("/")))


def correlation_key(correlation_id: str) -> Key:
    return _indexed("c", _digest(correlation_id))


def safe_event_id(event_id: str) -> str:
    """Event ids are usually GUIDs; any that Table keys (or blob names) cannot hold are hashed."""
    if _KEY_UNSAFE.search(event_id) or "|" in event_id or len(event_id) > 200:
        return f"sha256-{_digest(event_id)}"
    return event_id


def event_key(event_id: str) -> Key:
    return _indexed("e", safe_event_id(event_id))


def handled_marker_key(event_id: str) -> tuple[str, str]:
    """The (PartitionKey, RowKey) of an event's "handled" marker: after its records' range."""
    key = event_key(event_id)
    return key.partition, key.prefix + HANDLED_ROW


@dataclass(frozen=True)
class Unfinished:
    """An ARM write whose outcome is not known: no outcome closes its intent, or only ``unknown`` ones."""

    intent: AuditRecord
    unknown: bool  # an outcome was recorded, and it says unknown


def unfinished_writes(records: Iterable[AuditRecord], until: datetime) -> list[Unfinished]:
    """The intents (up to ``until``) that no known outcome among ``records`` closes."""
    intents: dict[str, AuditRecord] = {}
    known: set[str] = set()
    unknown: set[str] = set()
    for record in records:
        if record.kind is RecordKind.INTENT and record.time <= until:
            intents[record.record_id] = record
        elif record.kind is RecordKind.OUTCOME and record.intent_id:
            (unknown if record.result == Result.UNKNOWN.value else known).add(record.intent_id)
    return [
        Unfinished(intent, record_id in unknown)
        for record_id, intent in intents.items()
        if record_id not in known
    ]
