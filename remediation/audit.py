"""The module that talks to storage: the audit log (Table), the event archive and Event Grid's
dead letters (Blob), and the queue of delayed re-checks (Queue). The audit log's immutable copy
(Blob) has its own small module, ``ledger``, which only this one uses.

Write-ahead (DESIGN.md decision 4): a ``journal.Journal`` buffers a handling's records and stores
them here; an intent is stored, with everything buffered before it, before the ARM write it
announces. The process's concurrent stores go together (``group_commit``): one entity-group
transaction per partition per wave, a single entity as a plain insert. If storage cannot be
written, ``AuditUnavailable`` is raised, no ARM write happens, and Event Grid redelivers the event.
Records are only inserted (a batch stored again after a failure is upserted: part of it may have
been stored).

Layout (the partitions are explained in ``records``; README.md, "Audit log", for reviewers):
- table ``<AUDIT_TABLE>``: every record, once per question it answers (by hour, by set, by event,
  by correlation id, failed), and per event that can lead to work a ``~handled`` marker once its
  handling finished (a redelivery of a handled event is recorded as a duplicate and not handled
  again; an event about a set that is not restricted keeps none, and is taken in again);
- blob container ``<ARCHIVE_CONTAINER>``: the raw events that can lead to work (``intake``: not those
  about a set that is not restricted), as received, ``YYYY/MM/DD/HH/<id>.json``, for replay; kept
  ``ARCHIVE_RETENTION_DAYS`` (infra also sets a lifecycle rule);
- blob container ``<LEDGER_CONTAINER>``: every record once more, a line per record appended to
  append blobs under a time-based immutability policy (``ledger``, ``integrity``): after the table
  stored the record's hourly copy and before the store returns; ``remediation audit verify``
  reports where the table and this copy disagree;
- queue ``<RECHECK_QUEUE>``: a message naming only a scale set (and the attempt), hidden for the
  re-check delay; Base64 text, as the Functions queue trigger expects by default.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from remediation.credentials import managed_identity
from remediation.group_commit import CommitFailed, GroupCommit, Operation
from remediation.integrity import ledger_lines
from remediation.journal import AuditUnavailable, Entities, Journal
from remediation.ledger import Ledger, LedgerUnavailable
from remediation.model import QueuedEvent, Recheck
from remediation.records import (
    AuditRecord,
    Key,
    Unfinished,
    correlation_key,
    event_key,
    handled_marker_key,
    hour_key,
    safe_event_id,
    scale_set_key,
    unfinished_writes,
)
from remediation.review import Filters
from remediation.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableClient
    from azure.storage.blob import BlobServiceClient

# A queue message holds 64 KiB once base64-encoded: an event larger than this goes by its archive blob.
MAX_INLINE_EVENT_BYTES = 45_000


def _retry(settings: Settings) -> dict[str, Any]:
    """Few, quick retries: an outage should fail the invocation fast so Event Grid redelivers later.

    Tables take azure-core's backoff factor (0.5 s, doubling); Blob and Queue use the storage SDKs'
    own ExponentialRetry, whose defaults wait 15, 18 and 24 s: longer than Event Grid waits for an
    answer (30 s), so they are set to 1, 3 and 5 s (1 s of jitter) here.
    """
    return {
        "retry_total": settings.storage_retry_total,
        "retry_backoff_factor": 0.5,
        "initial_backoff": 1,
        "increment_base": 2,
        "random_jitter_range": 1,
    }


def _unreachable(error: BaseException) -> bool:
    """Storage did not answer (after the SDK's retries): no connection, a lost answer, a 5xx, 408
    or 429, or the ledger could not be appended to (its table write is stored: submitting the
    records again writer by writer would only meet them there); not a request refused for what
    it holds (a 4xx, a failed operation)."""
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    if isinstance(error, ServiceRequestError | ServiceResponseError | LedgerUnavailable):
        return True
    if isinstance(error, HttpResponseError):
        status = error.status_code
        return status is None or status >= 500 or status in (408, 429)
    return False


def _odata(query: Filters) -> tuple[str, dict[str, Any]]:
    """The narrowest partition(s) that answer the query, and the rest of it, as an OData filter."""
    parameters: dict[str, Any] = {}
    indexed: Key | None = None
    if query.event_id:
        indexed = event_key(query.event_id)
    elif query.correlation_id:
        indexed = correlation_key(query.correlation_id)
    elif query.scale_set:
        indexed = scale_set_key(query.scale_set)
    if indexed is not None:
        odata, parameters["pk"] = "PartitionKey eq @pk", indexed.partition
    elif query.writes:
        odata = "PartitionKey ge @first and PartitionKey le @last"
        parameters["first"] = f"w-{hour_key(query.since)[:8]}"
        parameters["last"] = f"w-{hour_key(query.until)[:8]}"
    else:
        prefix = "f" if query.outcome == "failed" else "h"
        odata = "PartitionKey ge @first and PartitionKey le @last"
        parameters["first"] = f"{prefix}-{hour_key(query.since)}"
        parameters["last"] = f"{prefix}-{hour_key(query.until)}"
    odata += " and RowKey ge @since and RowKey lt @until"
    row_prefix = indexed.prefix if indexed is not None else ""  # the key's range of its bucket
    parameters["since"] = row_prefix + query.since.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    parameters["until"] = row_prefix + query.until.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ") + "~"
    if query.outcome == "failed" and (query.event_id or query.correlation_id or query.scale_set):
        odata += " and (result eq 'failed' or kind eq 'error')"
    elif query.outcome and query.outcome != "failed":
        odata += " and ( result eq @outcome or kind eq @outcome )"  # the SDK substitutes whole words
        parameters["outcome"] = query.outcome
    if query.writes and (query.event_id or query.correlation_id or query.scale_set):
        odata += " and (kind eq 'intent' or kind eq 'outcome')"
    if query.scale_set and (query.event_id or query.correlation_id):
        odata += " and scale_set eq @scale_set"
        parameters["scale_set"] = query.scale_set
    return odata, parameters


@dataclass(frozen=True)
class AuditPage:
    records: tuple[AuditRecord, ...]
    continuation: str  # empty on the last page


def _encode_token(token: Any) -> str:
    if not token:
        return ""
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode()


def _decode_token(token: str) -> Any:
    if not token:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, UnicodeDecodeError):
        raise ValueError("continuation token is not one this service issued") from None


class AuditLog:
    """Appends records, answers "was this event handled already?" and the reviewers' queries."""

    def __init__(self, settings: Settings, credential: TokenCredential | None = None) -> None:
        from azure.data.tables import TableClient

        if settings.storage_connection_string:
            self._table: TableClient = TableClient.from_connection_string(
                settings.storage_connection_string, table_name=settings.audit_table, **_retry(settings)
            )
        else:
            credential = credential or managed_identity(settings)
            self._table = TableClient(
                settings.table_endpoint,
                table_name=settings.audit_table,
                credential=credential,
                **_retry(settings),
            )
        ledger = blob_service(settings, credential).get_container_client(settings.ledger_container)
        self.ledger = Ledger(ledger)
        self._ready = False
        self._ready_lock = threading.Lock()
        # The hourly copies go last: a record visible by time (what `audit` reads by default) is
        # then also visible by set, event and correlation, even if storage fails part-way.
        self._commits = GroupCommit(
            self._submit, unreachable=_unreachable, later=lambda partition: partition.startswith("h-")
        )

    def _ensure_table(self) -> None:
        if self._ready:
            return
        from azure.core.exceptions import AzureError, ResourceExistsError

        with self._ready_lock:
            try:
                self._table.create_table()
            except ResourceExistsError:
                pass
            except AzureError as error:
                raise AuditUnavailable(
                    f"audit table {self._table.table_name} cannot be created: {error}"
                ) from error
            self._ready = True

    def journal(self) -> Journal:
        return Journal(self)

    def append(self, record: AuditRecord) -> AuditRecord:
        """Store one record now (all its copies); raise AuditUnavailable if it is not stored."""
        journal = self.journal()
        journal.write_ahead(record)
        return record

    def store_entities(self, entities: Entities) -> None:
        """Store entities durably (with the process's other stores) or raise AuditUnavailable."""
        self._ensure_table()
        try:
            self._commits.commit(entities)
        except CommitFailed as failed:
            raise AuditUnavailable(f"audit records were not stored: {failed.__cause__}") from failed.__cause__

    def _submit(self, partition: str, operations: list[Operation]) -> None:
        """A partition's share of a wave: a transaction, or a single entity's plain insert or upsert
        (the same outcome without the transaction's MIME body and three SDK thread pools); then,
        for an hourly partition, its records' lines appended to the ledger, as one block."""
        if len(operations) == 1 and operations[0][0] in ("create", "upsert"):
            operation, entity = operations[0]
            if operation == "create":
                self._table.create_entity(entity)
            else:
                self._table.upsert_entity(entity)  # merge, as a transaction's "upsert" does
        else:
            self._table.submit_transaction(operations)
        lines = ledger_lines(partition, (entity for _, entity in operations))
        self.ledger.append(partition, [line.to_text() for line in lines])

    def was_handled(self, event_id: str) -> bool:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        self._ensure_table()
        try:
            self._table.get_entity(*handled_marker_key(event_id))
        except ResourceNotFoundError:
            return False
        except AzureError as error:
            raise AuditUnavailable(f"handled-event lookup failed: {error}") from error
        return True

    def query(self, query: Filters, page_size: int = 1000, continuation: str = "") -> AuditPage:
        """One page of the records ``query`` selects, oldest first, with a token for the next page."""
        from azure.core.exceptions import AzureError

        self._ensure_table()
        odata, parameters = _odata(query)
        try:
            pages = self._table.query_entities(
                odata, parameters=parameters, results_per_page=page_size
            ).by_page(continuation_token=_decode_token(continuation))
            page: Any = next(pages, [])
            records = tuple(AuditRecord.from_entity(entity) for entity in page)
            token = _encode_token(pages.continuation_token)  # type: ignore[attr-defined]
        except AzureError as error:
            raise AuditUnavailable(f"audit query failed: {error}") from error
        return AuditPage(records, token)

    def reachable(self) -> None:
        """Raise AuditUnavailable unless the table answers a query (doctor's storage check)."""
        now = datetime.now(UTC)
        self.query(Filters(now - timedelta(minutes=1), now), page_size=1)

    def search(self, query: Filters, limit: int = 1_000_000) -> Iterator[AuditRecord]:
        """Every record ``query`` selects (all pages), oldest first."""
        token = ""
        seen = 0
        while True:
            page = self.query(query, continuation=token)
            for record in page.records:
                yield record
                seen += 1
                if seen >= limit:
                    return
            token = page.continuation
            if not token:
                return

    def records(
        self, since: timedelta = timedelta(hours=24), until: datetime | None = None
    ) -> Iterator[AuditRecord]:
        """Every record from ``since`` ago up to ``until`` (default now), oldest first."""
        end = until or datetime.now(UTC)
        return self.search(Filters(end - since, end))

    def entities(self, queries: Iterable[tuple[str, dict[str, str]]]) -> Iterator[dict[str, Any]]:
        """The entities each OData filter selects, as stored (``integrity.table_queries``)."""
        from azure.core.exceptions import AzureError

        self._ensure_table()
        try:
            for odata, parameters in queries:
                for entity in self._table.query_entities(odata, parameters=parameters, results_per_page=1000):
                    yield dict(entity)
        except AzureError as error:
            raise AuditUnavailable(f"audit query failed: {error}") from error

    def unfinished_writes(self, since: datetime, until: datetime, scale_set: str = "") -> list[Unfinished]:
        """Intents in the window that no known outcome closes: ARM writes whose result nobody
        recorded, or recorded as unknown. Outcomes are looked for up to an hour past ``until``."""
        window = Filters(since, until + timedelta(hours=1), scale_set=scale_set, writes=True)
        return unfinished_writes(self.search(window), until)


def blob_service(settings: Settings, credential: TokenCredential | None = None) -> BlobServiceClient:
    """The storage account's Blob service: a connection string (Azurite), or the managed identity."""
    from azure.storage.blob import BlobServiceClient

    if settings.storage_connection_string:
        return BlobServiceClient.from_connection_string(
            settings.storage_connection_string, **_retry(settings)
        )
    return BlobServiceClient(
        settings.blob_endpoint, credential=credential or managed_identity(settings), **_retry(settings)
    )


# The metadata a replay leaves on the poison message or dead letter it queued.
REPLAYED_BY = "replayedby"


class EventArchive:
    """Raw events as received, for replay; and Event Grid's dead-lettered events."""

    def __init__(self, settings: Settings, credential: TokenCredential | None = None) -> None:
        self._service = blob_service(settings, credential)
        self._container = self._service.get_container_client(settings.archive_container)
        self._retention = timedelta(days=settings.archive_retention_days)
        self._ready = False

    @staticmethod
    def blob_name(event_id: str, received: datetime) -> str:
        safe = safe_event_id(event_id)
        return f"{received.astimezone(UTC).strftime('%Y/%m/%d/%H')}/{safe}.json"

    def store(self, event_id: str, event: object, received: datetime) -> str:
        """Keep the raw event; returns its blob name (recorded on the received record)."""
        try:
            return self.keep(self.blob_name(event_id, received), json.dumps(event, default=str))
        except AuditUnavailable as error:
            raise AuditUnavailable(f"event {event_id} was not archived: {error}") from error

    def load(self, name: str) -> object:
        from azure.core.exceptions import AzureError

        try:
            return json.loads(self._container.download_blob(name).readall())
        except AzureError as error:
            raise AuditUnavailable(f"archived event {name} cannot be read: {error}") from error

    def since(self, start: datetime, end: datetime) -> Iterator[tuple[str, object]]:
        """Archived events received in [start, end], oldest hour first."""
        for name, text in self.kept("", start, end):
            yield name, json.loads(text)

    def keep(self, name: str, text: str) -> str:
        """Keep a text (a poison message) under ``name``; returns the name."""
        from azure.core.exceptions import AzureError, ResourceExistsError

        try:
            if not self._ready:
                with contextlib.suppress(ResourceExistsError):
                    self._container.create_container()
                self._ready = True
            self._container.upload_blob(name, text.encode(), overwrite=True)
        except AzureError as error:
            raise AuditUnavailable(f"{name} was not kept: {error}") from error
        return name

    def kept(self, prefix: str, start: datetime, end: datetime) -> Iterator[tuple[str, str]]:
        """The texts kept under ``prefix`` + hour in [start, end], oldest hour first."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        try:
            while hour <= end:
                for blob in self._container.list_blobs(
                    name_starts_with=prefix + hour.strftime("%Y/%m/%d/%H/")
                ):
                    yield blob.name, self._container.download_blob(blob.name).readall().decode()
                hour += timedelta(hours=1)
        except ResourceNotFoundError:
            return
        except AzureError as error:
            raise AuditUnavailable(f"event archive cannot be listed: {error}") from error

    def prune(self, now: datetime, days_back: int = 7) -> int:
        """Delete archived events older than the retention (the days just past it); returns how many."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        cutoff = (now - self._retention).astimezone(UTC)
        deleted = 0
        try:
            for back in range(1, days_back + 1):
                day = (cutoff - timedelta(days=back)).strftime("%Y/%m/%d/")
                for blob in self._container.list_blobs(name_starts_with=day):
                    self._container.delete_blob(blob.name)
                    deleted += 1
        except ResourceNotFoundError:
            return deleted
        except AzureError as error:
            raise AuditUnavailable(f"event archive cannot be pruned: {error}") from error
        return deleted

    def mark_replayed(self, blob: str, replay_id: str, container: str = "") -> None:
        """Note on a kept blob (a poison message, a dead letter; in ``container``, default the
        archive's) the replay that queued it, so `doctor` no longer counts it as waiting."""
        from azure.core.exceptions import AzureError

        client = self._service.get_container_client(container) if container else self._container
        try:
            client.get_blob_client(blob).set_blob_metadata({REPLAYED_BY: replay_id})
        except AzureError as error:
            raise AuditUnavailable(f"{blob} was queued but not marked replayed: {error}") from error

    def waiting(self, prefix: str = "", container: str = "") -> int | None:
        """How many blobs under ``prefix`` (in ``container``, default the archive's) no replay has
        marked; None when the container does not exist."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        client = self._service.get_container_client(container) if container else self._container
        try:
            return sum(
                1
                for blob in client.list_blobs(name_starts_with=prefix or None, include=["metadata"])
                if REPLAYED_BY not in (blob.metadata or {})
            )
        except ResourceNotFoundError:
            return None
        except AzureError as error:
            raise AuditUnavailable(f"container {client.container_name} cannot be listed: {error}") from error

    def missing_containers(self, names: Iterable[str]) -> list[str]:
        """Which of these blob containers do not exist (reached with this identity)."""
        from azure.core.exceptions import AzureError

        try:
            return [name for name in names if not self._service.get_container_client(name).exists()]
        except AzureError as error:
            raise AuditUnavailable(f"blob storage cannot be reached: {error}") from error

    def dead_letters(self, container: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Events from Event Grid's dead-letter blobs: each blob is a JSON array of events carrying
        ``deadLetterReason``, ``deliveryAttempts``, ``lastDeliveryOutcome`` and friends."""
        from azure.core.exceptions import AzureError

        client = self._service.get_container_client(container)
        try:
            for blob in client.list_blobs():
                content = json.loads(client.download_blob(blob.name).readall())
                for event in content if isinstance(content, list) else [content]:
                    yield blob.name, event
        except AzureError as error:
            raise AuditUnavailable(f"dead-letter container {container} cannot be read: {error}") from error


class RecheckQueue:
    def __init__(self, settings: Settings, credential: TokenCredential | None = None) -> None:
        from azure.storage.queue import QueueClient, TextBase64EncodePolicy

        def client(name: str) -> QueueClient:
            encode = TextBase64EncodePolicy()
            if settings.storage_connection_string:
                return QueueClient.from_connection_string(
                    settings.storage_connection_string, name, message_encode_policy=encode, **_retry(settings)
                )
            return QueueClient(
                settings.queue_endpoint,
                name,
                credential=credential or managed_identity(settings),
                message_encode_policy=encode,
                **_retry(settings),
            )

        self._queue = client(settings.recheck_queue)
        # Where the Functions host moves a message after maxDequeueCount failures (on_poison takes it).
        self._poison = client(f"{settings.recheck_queue}-poison")
        self._ready = False

    def backlog(self) -> tuple[int | None, int | None]:
        """Messages waiting in the work queue and in its poison queue (approximate, as Storage
        counts them; None for a queue not yet created)."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        counts: list[int | None] = []
        for queue in (self._queue, self._poison):
            try:
                counts.append(queue.get_queue_properties().approximate_message_count)
            except ResourceNotFoundError:
                counts.append(None)
            except AzureError as error:
                raise AuditUnavailable(f"queue {queue.queue_name} cannot be read: {error}") from error
        return counts[0], counts[1]

    def schedule(self, recheck: Recheck, delay_s: float) -> None:
        """Queue a look at a set, visible after ``delay_s``."""
        self._send(recheck.to_message(), delay_s, f"re-check of {recheck.scale_set}")

    def schedule_event(self, queued: QueuedEvent, archived: str = "") -> None:
        """Queue an event for intake on a worker; by its archive blob (``archived``) when it is
        too big for a queue message (64 KiB, base64 included)."""
        message = queued.to_message()
        if len(message) > MAX_INLINE_EVENT_BYTES:
            if not archived:
                raise AuditUnavailable(f"event {queued.event_id} is too big to queue and was not archived")
            message = dataclasses.replace(queued, event=None, archive=archived).to_message()
        self._send(message, 0, f"event {queued.event_id}")

    def send(self, message: str) -> None:
        """Queue a message as it is (a poison message replayed)."""
        self._send(message, 0, "a replayed message")

    def _send(self, message: str, delay_s: float, what: str) -> None:
        from azure.core.exceptions import AzureError, ResourceExistsError

        try:
            if not self._ready:
                with contextlib.suppress(ResourceExistsError):
                    self._queue.create_queue()
                self._ready = True
            self._queue.send_message(message, visibility_timeout=round(delay_s))
        except AzureError as error:
            raise AuditUnavailable(f"{what} was not queued: {error}") from error
