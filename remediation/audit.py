"""The storage account's connections, and the audit log (Table). Beside it: ``archive`` (the
event archive and Event Grid's dead letters, Blob), ``work_queue`` (the work queue and its poison
queue), ``ledger`` (the audit log's immutable copy, Blob, which only this module writes) and
``single_flight`` (a blob lease per set): the modules that talk to storage.

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
- blob container ``<ARCHIVE_CONTAINER>`` (``archive``): the raw events that can lead to work, as
  received, ``YYYY/MM/DD/HH/<id>.json``, for replay; kept ``ARCHIVE_RETENTION_DAYS``;
- blob container ``<LEDGER_CONTAINER>``: every record once more, a line per record appended to
  append blobs under a time-based immutability policy (``ledger``, ``integrity``): after the table
  stored the record's hourly copy and before the store returns; ``remediation audit verify``
  reports where the table and this copy disagree;
- queue ``<RECHECK_QUEUE>`` (``work_queue``): looks at sets, queued events, re-checks.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from remediation import table_batch
from remediation.credentials import managed_identity
from remediation.group_commit import CommitFailed, GroupCommit, Operation
from remediation.integrity import ledger_lines
from remediation.journal import AuditUnavailable, Entities, Journal
from remediation.ledger import Ledger, LedgerUnavailable
from remediation.records import (
    AuditRecord,
    Key,
    Unfinished,
    correlation_key,
    event_key,
    handled_marker_key,
    hour_key,
    scale_set_key,
    unfinished_writes,
)
from remediation.review import Filters
from remediation.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableClient
    from azure.storage.blob import BlobServiceClient


def storage_retry(settings: Settings) -> dict[str, Any]:
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
                settings.storage_connection_string, table_name=settings.audit_table, **storage_retry(settings)
            )
        else:
            credential = credential or managed_identity(settings)
            self._table = TableClient(
                settings.table_endpoint,
                table_name=settings.audit_table,
                credential=credential,
                **storage_retry(settings),
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
            self._transact(operations)
        lines = ledger_lines(partition, (entity for _, entity in operations))
        self.ledger.append(partition, [line.to_text() for line in lines])

    def _transact(self, operations: list[Operation]) -> None:
        """One entity-group transaction, its body written and its answer read by ``table_batch``
        (not the SDK's MIME machinery: see there), sent through the table client's own pipeline
        (its authentication, retries and errors). Raises HttpResponseError as the SDK would: the
        transaction's status, or the failed operation's status and error code."""
        from azure.core.exceptions import HttpResponseError
        from azure.core.rest import HttpRequest

        root = f"{self._table.scheme}://{self._table._primary_hostname}"  # as the SDK addresses it
        batch = table_batch.request(f"{root}/{self._table.table_name}", operations)
        headers = {
            "x-ms-version": table_batch.API_VERSION,
            "DataServiceVersion": "3.0",
            "MaxDataServiceVersion": "3.0;NetFx",
            "Content-Type": batch.content_type,
            "Accept": "application/json",
        }
        post = HttpRequest("POST", f"{root}/$batch", headers=headers, content=batch.body)
        response = self._table._client.send_request(post, stream=True)  # not decoded as JSON
        body = response.read()
        if response.status_code != 202:
            raise HttpResponseError(response=response)
        answers = table_batch.answers(response.headers.get("Content-Type", ""), body)
        failed = [answer for answer in answers if not 200 <= answer.status < 300]
        if failed:
            code, message = failed[0].error
            error = HttpResponseError(message=f"transaction refused: {failed[0].status} {code}: {message}")
            error.status_code, error.reason = failed[0].status, failed[0].reason
            raise error

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
        """One page of the records ``query`` selects, oldest first, with a token for the next page
        (none when the table does not exist yet: a read makes nothing)."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        odata, parameters = _odata(query)
        try:
            pages = self._table.query_entities(
                odata, parameters=parameters, results_per_page=page_size
            ).by_page(continuation_token=_decode_token(continuation))
            page: Any = next(pages, [])
            records = tuple(AuditRecord.from_entity(entity) for entity in page)
            token = _encode_token(pages.continuation_token)  # type: ignore[attr-defined]
        except ResourceNotFoundError:
            return AuditPage((), "")
        except AzureError as error:
            raise AuditUnavailable(f"audit query failed: {error}") from error
        return AuditPage(records, token)

    def reachable(self) -> bool:
        """Whether the audit table exists and answers a query (doctor's storage check, which
        creates nothing); AuditUnavailable when storage cannot be reached or refuses."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            next(iter(self._table.query_entities("PartitionKey eq 'h-0'", results_per_page=1)), None)
        except ResourceNotFoundError:
            return False
        except AzureError as error:
            raise AuditUnavailable(f"audit table {self._table.table_name} cannot be read: {error}") from error
        return True

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
            settings.storage_connection_string, **storage_retry(settings)
        )
    return BlobServiceClient(
        settings.blob_endpoint, credential=credential or managed_identity(settings), **storage_retry(settings)
    )
