"""Specification of the audit ledger, the tamper evidence of the audit table: every record the log
stores is also one line in append blobs under an immutability policy (infra), written after the
table and before the store returns; a ledger that cannot be appended to fails the store like the
table would; and `remediation audit verify` reports every record edited in the table, deleted from
it, or put there without going through the log."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables import TableClient, UpdateMode
from azure.storage.blob import BlobServiceClient, ContainerClient
from estate import Estate

from localazure.stack import LocalAzure
from localazure.storage_faults import StorageFaults, StorageRequest, table_write_containing
from remediation.audit import AuditLog
from remediation.cli import main
from remediation.integrity import Finding, LedgerLine, digest, judge, table_queries
from remediation.journal import AuditUnavailable
from remediation.ledger import Ledger, blob_name, blocks
from remediation.model import RecordKind
from remediation.records import AuditRecord
from remediation.settings import Settings

STRIP = {"remediation.mode": "strip"}
SET = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/web"
HOUR = datetime(2026, 1, 2, 3, 30, tzinfo=UTC)  # records timed here read back from one hour's blobs


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def remediated_storm(estate: Estate, size: int = 2) -> None:
    estate.create_set("web", tags=STRIP)
    estate.scale("web", size)
    for event in estate.events():
        estate.deliver(event)
    estate.sim.wait_idle(30)


def ledger_container(environment: dict[str, str]) -> ContainerClient:
    service = BlobServiceClient.from_connection_string(environment["RemediationStorage"])
    return service.get_container_client(environment["LEDGER_CONTAINER"])


def ledger_texts(container: ContainerClient) -> list[str]:
    """Every line of every ledger blob, blob by blob in name order (read directly, not by the product)."""
    texts: list[str] = []
    for name in sorted(blob.name for blob in container.list_blobs()):
        texts.extend(line for line in container.download_blob(name).readall().decode().split("\n") if line)
    return texts


def audit_table(environment: dict[str, str]) -> TableClient:
    return TableClient.from_connection_string(
        environment["RemediationStorage"], table_name=environment["AUDIT_TABLE"]
    )


def hourly_copies(table: TableClient) -> list[dict[str, Any]]:
    return [dict(entity) for entity in table.query_entities("PartitionKey ge 'h-' and PartitionKey lt 'h.'")]


def verify_output(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["audit", "verify", "--since", "2h"])
    return code, capsys.readouterr().out


def reported(out: str) -> dict[str, str]:
    """key -> finding, from the discrepancy lines `audit verify` prints."""
    found: dict[str, str] = {}
    for line in out.splitlines():
        match = re.match(
            r"^(edited|deleted from table|missing from ledger|differing ledger lines)\s+(\S+):", line
        )
        if match:
            found[match.group(2)] = match.group(1)
    return found


# --- what the ledger holds ---


def test_each_record_a_handling_stores_is_one_line_of_the_ledger_with_its_content(estate: Estate) -> None:
    remediated_storm(estate)

    copies = hourly_copies(audit_table(estate.environment))
    lines = [LedgerLine.from_text(text) for text in ledger_texts(ledger_container(estate.environment))]

    assert copies, "the handling stored records"
    by_key = {line.key: line for line in lines}
    assert len(by_key) == len(lines) == len(copies), "one line per record, not one per copy"
    for entity in copies:
        line = by_key[f"{entity['PartitionKey']}/{entity['RowKey']}"]
        assert line.sha256 == digest(entity)
        assert line.record["record_id"] == entity["record_id"] and line.record["kind"] == entity["kind"]


def test_the_records_of_one_wave_are_one_append_block(local_azure: LocalAzure) -> None:
    settings = local_azure.settings(audit_table=_unique("audit"), ledger_container=_unique("ledger-"))
    journal = AuditLog(settings).journal()
    for n in range(30):
        journal.write(AuditRecord(RecordKind.DECISION, scale_set=SET, time=HOUR + timedelta(microseconds=n)))

    journal.flush()

    service = BlobServiceClient.from_connection_string(settings.storage_connection_string)
    blob = service.get_blob_client(settings.ledger_container, blob_name("h-2026010203", 0))
    properties = blob.get_blob_properties()
    assert properties.blob_type == "AppendBlob"
    assert properties.append_blob_committed_block_count == 1
    assert len(blob.download_blob().readall().decode().splitlines()) == 30


def test_a_full_blob_rolls_to_the_next_and_every_line_reads_back_in_order(local_azure: LocalAzure) -> None:
    service = BlobServiceClient.from_connection_string(local_azure.azurite.connection_string)
    container = service.get_container_client(_unique("ledger-"))
    ledger = Ledger(container, roll_at_blocks=2)

    for n in range(5):
        ledger.append("h-2026010203", [f"line {n}"])

    names = sorted(blob.name for blob in container.list_blobs())
    assert names == [blob_name("h-2026010203", n) for n in range(3)]
    counts = [
        container.get_blob_client(name).get_blob_properties().append_blob_committed_block_count
        for name in names
    ]
    assert counts == [2, 2, 1]
    assert list(ledger.lines(HOUR, HOUR)) == [f"line {n}" for n in range(5)]


def test_another_host_appends_to_the_hours_last_blob_and_truncates_nothing(local_azure: LocalAzure) -> None:
    service = BlobServiceClient.from_connection_string(local_azure.azurite.connection_string)
    container = service.get_container_client(_unique("ledger-"))
    first, second = Ledger(container, roll_at_blocks=2), Ledger(container, roll_at_blocks=2)

    first.append("h-2026010203", ["a"])
    first.append("h-2026010203", ["b"])  # blob 0 is full: first's next append goes to blob 1
    first.append("h-2026010203", ["c"])
    second.append("h-2026010203", ["d"])  # a host that starts now finds blob 1 by listing the hour

    assert list(first.lines(HOUR, HOUR)) == ["a", "b", "c", "d"]


def test_lines_are_packed_whole_into_blocks_within_the_limit() -> None:
    lines = ["x" * 10, "y" * 10, "z" * 25, "w"]
    packed = blocks(lines, max_bytes=23)
    assert packed == [b"x" * 10 + b"\n" + b"y" * 10 + b"\n", b"z" * 25 + b"\n", b"w\n"]
    assert b"".join(packed).decode().splitlines() == lines


# --- verify: the table against the ledger ---


def test_verify_reports_exactly_the_record_edited_and_the_one_deleted_in_the_table(
    estate: Estate, capsys: pytest.CaptureFixture[str]
) -> None:
    remediated_storm(estate)
    code, out = verify_output(capsys)
    assert code == 0, out
    table = audit_table(estate.environment)
    copies = hourly_copies(table)
    assert f"{len(copies)} records checked, {len(copies)} agree, 0 edited, 0 deleted from table" in out

    outcome = next(e for e in copies if e["kind"] == "outcome" and e["result"] == "succeeded")
    decision = next(e for e in copies if e["kind"] == "decision")
    table.update_entity({**outcome, "result": "skipped"}, mode=UpdateMode.REPLACE)
    table.delete_entity(decision["PartitionKey"], decision["RowKey"])

    code, out = verify_output(capsys)
    assert code == 1
    assert reported(out) == {
        f"{outcome['PartitionKey']}/{outcome['RowKey']}": "edited",
        f"{decision['PartitionKey']}/{decision['RowKey']}": "deleted from table",
    }
    assert "fields changed: result" in out
    assert (
        f"{len(copies)} records checked, {len(copies) - 2} agree, 1 edited, 1 deleted from table, "
        "0 missing from ledger"
    ) in out


def test_verify_reports_a_record_put_into_the_table_behind_the_logs_back(
    estate: Estate, capsys: pytest.CaptureFixture[str]
) -> None:
    remediated_storm(estate, size=1)
    table = audit_table(estate.environment)
    forged = AuditRecord(RecordKind.OUTCOME, scale_set=SET, result="succeeded").to_entities()[0]
    table.create_entity(forged)

    code, out = verify_output(capsys)

    assert code == 1
    assert reported(out) == {f"{forged['PartitionKey']}/{forged['RowKey']}": "missing from ledger"}


def test_verify_reports_a_copy_edited_where_a_set_is_looked_up_and_one_deleted_where_an_event_is(
    estate: Estate, capsys: pytest.CaptureFixture[str]
) -> None:
    remediated_storm(estate)
    table = audit_table(estate.environment)
    by_set = [dict(e) for e in table.query_entities("PartitionKey ge 's-' and PartitionKey lt 's.'")]
    by_event = [dict(e) for e in table.query_entities("PartitionKey ge 'e-' and PartitionKey lt 'e.'")]
    outcome = next(e for e in by_set if e["kind"] == "outcome" and e["result"] == "succeeded")
    decision = next(e for e in by_event if e.get("kind") == "decision")
    table.update_entity({**outcome, "result": "skipped"}, mode=UpdateMode.REPLACE)
    table.delete_entity(decision["PartitionKey"], decision["RowKey"])

    code, out = verify_output(capsys)

    assert code == 1
    assert reported(out) == {
        f"{outcome['PartitionKey']}/{outcome['RowKey']}": "edited",
        f"{decision['PartitionKey']}/{decision['RowKey']}": "deleted from table",
    }


def _line(record: AuditRecord, **changes: Any) -> str:
    entity = {**record.to_entities()[0], **changes}
    return LedgerLine.of(entity).to_text()


def test_identical_lines_for_a_record_are_one_record_and_differing_ones_are_reported() -> None:
    kept = AuditRecord(RecordKind.DECISION, scale_set=SET, time=HOUR)
    twice = AuditRecord(RecordKind.INTENT, scale_set=SET, time=HOUR + timedelta(seconds=1))
    table = [kept.to_entities()[0], twice.to_entities()[0]]
    ledger = [_line(kept), _line(kept), _line(twice), _line(twice, reason="another story")]

    verdict = judge(table, ledger, HOUR - timedelta(minutes=5), HOUR + timedelta(minutes=5))

    assert verdict.duplicates == 1 and verdict.agree == 1 and verdict.checked == 2
    assert [(d.finding, d.key) for d in verdict.discrepancies] == [
        (Finding.AMBIGUOUS, f"{table[1]['PartitionKey']}/{table[1]['RowKey']}")
    ]


def test_a_copy_put_into_an_index_behind_the_logs_back_is_reported_by_its_own_key() -> None:
    record = AuditRecord(RecordKind.DECISION, scale_set=SET, time=HOUR)
    forged = AuditRecord(RecordKind.OUTCOME, scale_set=SET, result="succeeded", time=HOUR)
    hourly, by_set = record.to_entities()
    forged_by_set = forged.to_entities()[1]
    window = (HOUR - timedelta(minutes=5), HOUR + timedelta(minutes=5))

    verdict = judge([hourly, by_set, forged_by_set], [_line(record)], *window, every_copy=True)

    forged_key = f"{forged_by_set['PartitionKey']}/{forged_by_set['RowKey']}"
    assert [(d.finding, d.key) for d in verdict.discrepancies] == [(Finding.UNLEDGERED, forged_key)]
    assert verdict.agree == 1 and verdict.checked == 1


def test_a_ledger_line_that_does_not_hold_together_is_reported_and_lines_outside_the_window_ignored() -> None:
    inside = AuditRecord(RecordKind.DECISION, time=HOUR)
    before = AuditRecord(RecordKind.DECISION, time=HOUR - timedelta(minutes=20))  # same hour, earlier
    broken = json.loads(_line(inside))
    broken["record"]["reason"] = "changed after hashing"

    verdict = judge(
        [inside.to_entities()[0]],
        [_line(before), json.dumps(broken), "not json", _line(inside)],
        HOUR - timedelta(minutes=5),
        HOUR + timedelta(minutes=5),
    )

    assert [d.finding for d in verdict.discrepancies] == [Finding.UNREADABLE, Finding.UNREADABLE]
    assert verdict.agree == 1 and verdict.checked == 1


# --- a ledger that cannot be appended to fails the store ---


@pytest.fixture
def faults(local_azure: LocalAzure) -> Iterator[StorageFaults]:
    with StorageFaults(local_azure.azurite) as proxy:
        yield proxy


def _through(faults: StorageFaults, local_azure: LocalAzure) -> Settings:
    return local_azure.settings(
        audit_table=_unique("audit"),
        ledger_container=_unique("ledger-"),
        storage_connection_string=faults.connection_string,
        storage_retry_total=0,
    )


def _hourly_write_of(record: AuditRecord) -> Any:
    """The table write of ``record``'s hourly copy (its last: the hourly copies go last)."""
    writes = table_write_containing(record.record_id)
    partition = f'"PartitionKey": "{record.keys()[0].partition}"'.encode()
    return lambda request: writes(request) and partition in request.body


def _appends(request: StorageRequest) -> bool:
    return request.service == "blob" and request.method == "PUT" and "comp=appendblock" in request.path


def test_a_failing_ledger_append_fails_the_write_ahead_and_storing_again_completes_the_ledger(
    faults: StorageFaults, local_azure: LocalAzure
) -> None:
    settings = _through(faults, local_azure)
    log = AuditLog(settings)
    log.append(AuditRecord(RecordKind.DECISION, scale_set=SET, time=HOUR))  # the ledger's blob exists
    journal = log.journal()
    intent = AuditRecord(RecordKind.INTENT, scale_set=SET, action="detach", time=HOUR + timedelta(seconds=1))
    faults.fail_after(_hourly_write_of(intent), 1)  # the table takes the intent, the ledger fails

    with pytest.raises(AuditUnavailable, match="ledger"):
        journal.write_ahead(intent)  # so its ARM write must not go out

    assert [r.service for r in faults.requests() if r.injected] == ["blob"]
    window = (HOUR - timedelta(minutes=5), HOUR + timedelta(minutes=5))
    verdict = judge(log.entities(table_queries(*window)), log.ledger.lines(*window), *window)
    assert [(d.finding, d.key.rsplit("-", 1)[-1]) for d in verdict.discrepancies] == [
        (Finding.UNLEDGERED, intent.record_id)
    ]

    journal.flush()  # the handling's last flush stores what failed again (storage is back)

    verdict = judge(log.entities(table_queries(*window)), log.ledger.lines(*window), *window)
    assert verdict.ok and verdict.agree == 2


def test_an_append_whose_answer_was_lost_fails_the_store_and_its_repeated_line_is_harmless(
    faults: StorageFaults, local_azure: LocalAzure
) -> None:
    settings = _through(faults, local_azure)
    log = AuditLog(settings)
    journal = log.journal()
    intent = AuditRecord(RecordKind.INTENT, scale_set=SET, action="detach", time=HOUR)
    faults.lose_answer(_appends)  # the block is appended; the client cannot know

    with pytest.raises(AuditUnavailable):
        journal.write_ahead(intent)
    journal.flush()

    window = (HOUR - timedelta(minutes=5), HOUR + timedelta(minutes=5))
    lines = list(log.ledger.lines(*window))
    assert len(lines) == 2 and lines[0] == lines[1]
    verdict = judge(log.entities(table_queries(*window)), lines, *window)
    assert verdict.ok and verdict.agree == 1 and verdict.duplicates == 1


def test_a_line_whose_append_failed_goes_with_the_processs_next_append_when_the_handling_gave_up(
    faults: StorageFaults, local_azure: LocalAzure
) -> None:
    log = AuditLog(_through(faults, local_azure))
    log.append(AuditRecord(RecordKind.DECISION, scale_set=SET, time=HOUR))
    journal = log.journal()
    intent = AuditRecord(RecordKind.INTENT, scale_set=SET, action="detach", time=HOUR + timedelta(seconds=1))
    faults.fail_after(_hourly_write_of(intent), 2)  # its ledger append fails, then the last flush too

    with pytest.raises(AuditUnavailable):
        journal.write_ahead(intent)
    with pytest.raises(AuditUnavailable):
        journal.flush()  # the handling gives up: its table holds the intent, the ledger does not
    assert faults.pending_failures == 0 and log.ledger.backlog == 1

    log.append(AuditRecord(RecordKind.DECISION, scale_set=SET, time=HOUR + timedelta(seconds=2)))

    window = (HOUR - timedelta(minutes=5), HOUR + timedelta(minutes=5))
    verdict = judge(log.entities(table_queries(*window)), log.ledger.lines(*window), *window, every_copy=True)
    assert verdict.ok and verdict.agree == 3 and log.ledger.backlog == 0
