"""The only module that talks to storage: the append-only audit log in Azure Table storage, and
the queue of delayed re-checks.

Every decision and every write is recorded here, and the intent of a write is recorded before the
write reaches ARM (DESIGN.md decision 4): if this store cannot be written, ``AuditUnavailable``
is raised, the handler does not act, and Event Grid redelivers the event later.

Layout (documented for reviewers in README.md, "Audit log"):
- table ``<AUDIT_TABLE>``: one entity per record, never updated. PartitionKey is the UTC hour
  (``YYYYMMDDHH``), so "what happened in the last N hours" reads a few partitions; RowKey is the
  record time plus the record id, so a partition reads back in time order.
- table ``<AUDIT_TABLE>events``: one entity per event that was handled to the end, keyed by event
  id; a redelivery of such an event is recorded as a duplicate and not handled again. It is
  written only after handling succeeded, so an event whose handling failed is handled again.
- queue ``<RECHECK_QUEUE>``: a message naming only a scale set (and the attempt number), hidden
  for the re-check delay, consumed by the queue-triggered function. Base64 text, as the Functions
  queue trigger expects by default.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from remediation import __version__
from remediation.model import Recheck, RecordKind
from remediation.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableClient


def _identity(settings: Settings) -> TokenCredential:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=settings.managed_identity_client_id or None)


_KEY_UNSAFE = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


class AuditUnavailable(RuntimeError):
    """The audit store could not be written or read; nothing may be written to ARM."""


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
    arm_request_id: str = ""
    intent_id: str = ""  # on an outcome: the intent record it closes
    duration_ms: int = 0
    dry_run: bool = False
    replay_of: str = ""
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    record_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    version: str = __version__

    def to_entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": self.time.strftime("%Y%m%d%H"),
            "RowKey": f"{self.time.strftime('%Y%m%dT%H%M%S.%fZ')}-{self.record_id}",
        }
        for name, value in asdict(self).items():
            if name == "evidence":
                entity[name] = json.dumps(list(value))
            elif name == "time":
                entity[name] = self.time.isoformat()
            elif isinstance(value, RecordKind):
                entity[name] = value.value
            else:
                entity[name] = value
        return entity

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any]) -> AuditRecord:
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            if name not in entity:
                continue
            value = entity[name]
            if name == "evidence":
                value = tuple(json.loads(value or "[]"))
            elif name == "time":
                value = datetime.fromisoformat(value)
            elif name == "kind":
                value = RecordKind(value)
            values[name] = value
        return cls(**values)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        data["time"] = self.time.isoformat()
        data["evidence"] = list(self.evidence)
        return data


def _event_key(event_id: str) -> str:
    """Table keys may not contain / \\ # ? or control characters; such ids are hashed."""
    if _KEY_UNSAFE.search(event_id) or len(event_id) > 200:
        return "sha256-" + hashlib.sha256(event_id.encode()).hexdigest()
    return event_id


class AuditLog:
    """Appends records and answers "was this event handled already?"."""

    def __init__(self, settings: Settings, credential: TokenCredential | None = None) -> None:
        self._records = self._table(settings, settings.audit_table, credential)
        self._events = self._table(settings, f"{settings.audit_table}events", credential)
        self._ready = False

    @staticmethod
    def _table(settings: Settings, name: str, credential: TokenCredential | None) -> TableClient:
        from azure.data.tables import TableClient

        if settings.storage_connection_string:
            return TableClient.from_connection_string(settings.storage_connection_string, table_name=name)
        return TableClient(
            settings.table_endpoint, table_name=name, credential=credential or _identity(settings)
        )

    def _ensure_tables(self) -> None:
        if self._ready:
            return
        from azure.core.exceptions import AzureError, ResourceExistsError

        for table in (self._records, self._events):
            try:
                table.create_table()
            except ResourceExistsError:
                pass
            except AzureError as error:
                raise AuditUnavailable(
                    f"audit table {table.table_name} cannot be created: {error}"
                ) from error
        self._ready = True

    def append(self, record: AuditRecord) -> AuditRecord:
        """Store one record; raise AuditUnavailable if it is not stored."""
        from azure.core.exceptions import AzureError

        self._ensure_tables()
        try:
            self._records.create_entity(record.to_entity())
        except AzureError as error:
            raise AuditUnavailable(f"audit record {record.kind.value} was not stored: {error}") from error
        return record

    def was_handled(self, event_id: str) -> bool:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        self._ensure_tables()
        try:
            self._events.get_entity(_event_key(event_id), "handled")
        except ResourceNotFoundError:
            return False
        except AzureError as error:
            raise AuditUnavailable(f"handled-event lookup failed: {error}") from error
        return True

    def mark_handled(self, event_id: str, outcome: str) -> None:
        from azure.core.exceptions import AzureError

        self._ensure_tables()
        entity = {
            "PartitionKey": _event_key(event_id),
            "RowKey": "handled",
            "event_id": event_id,
            "outcome": outcome,
            "time": datetime.now(UTC).isoformat(),
        }
        try:
            # Upsert: two concurrent deliveries may both finish; either marker says the same.
            self._events.upsert_entity(entity)
        except AzureError as error:
            raise AuditUnavailable(f"handled-event marker was not stored: {error}") from error

    def records(
        self, since: timedelta = timedelta(hours=24), until: datetime | None = None
    ) -> Iterator[AuditRecord]:
        """Records from ``since`` ago up to ``until`` (now), oldest first."""
        from azure.core.exceptions import AzureError

        self._ensure_tables()
        end = until or datetime.now(UTC)
        start = end - since
        query = "PartitionKey ge @start and PartitionKey le @end"
        parameters = {"start": start.strftime("%Y%m%d%H"), "end": end.strftime("%Y%m%d%H")}
        try:
            entities = list(self._records.query_entities(query, parameters=parameters))
        except AzureError as error:
            raise AuditUnavailable(f"audit query failed: {error}") from error
        for entity in sorted(entities, key=lambda e: (e["PartitionKey"], e["RowKey"])):
            record = AuditRecord.from_entity(entity)
            if start <= record.time <= end:
                yield record


class RecheckQueue:
    def __init__(self, settings: Settings, credential: TokenCredential | None = None) -> None:
        from azure.storage.queue import QueueClient, TextBase64EncodePolicy

        encode = TextBase64EncodePolicy()
        if settings.storage_connection_string:
            self._queue = QueueClient.from_connection_string(
                settings.storage_connection_string, settings.recheck_queue, message_encode_policy=encode
            )
        else:
            self._queue = QueueClient(
                settings.queue_endpoint,
                settings.recheck_queue,
                credential=credential or _identity(settings),
                message_encode_policy=encode,
            )
        self._ready = False

    def schedule(self, recheck: Recheck, delay_s: float) -> None:
        from azure.core.exceptions import AzureError, ResourceExistsError

        try:
            if not self._ready:
                with contextlib.suppress(ResourceExistsError):
                    self._queue.create_queue()
                self._ready = True
            self._queue.send_message(recheck.to_message(), visibility_timeout=round(delay_s))
        except AzureError as error:
            raise AuditUnavailable(f"re-check of {recheck.scale_set} was not queued: {error}") from error
