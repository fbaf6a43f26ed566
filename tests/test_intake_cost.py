"""Specification of what intake spends on an event. One about a set that is not restricted (it
can lead to no write) costs the set's read and its two records (received, decision): it is not
archived, not checked against handled events, and no handled marker is kept for it. One that may
lead to work (its set restricted, or its set not read: ARM did not answer) is checked against
handled events and archived, as before.

Counted outside the product: ARM requests from the simulator's log, storage requests from the
proxy in front of Azurite, archived events from Azurite's blob listing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import arm_docs as docs
import azure.functions as func
import pytest
from azure.storage.blob import ContainerClient
from estate import Estate

from localazure.host import user_function
from localazure.storage_faults import StorageFaults, StorageRequest
from remediation.credentials import LoopbackCredential
from remediation.model import RecordKind
from remediation.records import AuditRecord
from sim import Faults, RequestRecord

SET = "Microsoft.Compute/virtualMachineScaleSets"
STRIP = {"remediation.mode": "strip"}


@pytest.fixture
def storage(estate: Estate, monkeypatch: pytest.MonkeyPatch) -> Iterator[StorageFaults]:
    """The remediator's storage behind the proxy, which logs every request it sends."""
    with StorageFaults(estate.local.azurite) as proxy:
        estate.environment["RemediationStorage"] = proxy.connection_string
        monkeypatch.setenv("RemediationStorage", proxy.connection_string)
        yield proxy


def remediator_requests(estate: Estate, after: int) -> list[RequestRecord]:
    return [
        r for r in estate.sim.requests()[after:] if r.principal.lower() == LoopbackCredential.APP_ID.lower()
    ]


def archived(estate: Estate) -> list[str]:
    """The event archive's blobs, listed from Azurite itself (not through the proxy)."""
    container = ContainerClient.from_connection_string(
        estate.local.azurite.connection_string, estate.environment["ARCHIVE_CONTAINER"]
    )
    return [blob.name for blob in container.list_blobs()] if container.exists() else []


def split_ledger(
    estate: Estate, sent: list[StorageRequest]
) -> tuple[list[StorageRequest], list[StorageRequest]]:
    """The audit ledger's requests (every stored record is also appended there), and the others."""
    container = f"/{estate.environment['LEDGER_CONTAINER']}"
    ledger = [r for r in sent if r.service == "blob" and container in r.path]
    return ledger, [r for r in sent if r not in ledger]


def appended(ledger: list[StorageRequest]) -> int:
    return sum(1 for r in ledger if "comp=appendblock" in r.path and r.status == 201)


def records_of(estate: Estate, event_id: str) -> list[AuditRecord]:
    return [r for r in estate.audit() if r.event_id == event_id]


def test_an_event_about_an_unrestricted_set_costs_one_arm_read_and_no_blob_request(
    estate: Estate, storage: StorageFaults
) -> None:
    estate.create_set("open")
    estate.events()  # the set's creation: not delivered
    event = docs.write_event(docs.set_id("open"))
    before = len(estate.sim.requests())
    storage.reset()

    estate.take_in(event)
    estate.take_in(event)  # Event Grid delivers it again (its answer was lost, say)

    reads = remediator_requests(estate, before)
    assert [(r.method, r.resource_type.lower()) for r in reads] == [("GET", SET.lower())] * 2, (
        "one read of the set per delivery, and nothing else"
    )
    ledger, sent = split_ledger(estate, storage.requests())
    assert appended(ledger) == 2, "each delivery's records are one append to the audit ledger"
    assert [r for r in sent if r.service != "table"] == [], "no blob (archive, lease, mark), no queue"
    assert [r.path for r in sent if r.method == "GET"] == [], "no duplicate check: nothing read back"
    assert archived(estate) == []
    records = records_of(estate, event["id"])
    assert [r.kind for r in records] == [RecordKind.RECEIVED, RecordKind.DECISION] * 2
    assert all(r.archive == "" and r.error == "" for r in records)
    assert all(r.reason.startswith("not restricted") for r in records if r.kind is RecordKind.DECISION)
    assert all(r.scale_set == docs.set_id("open") for r in records if r.kind is RecordKind.DECISION)

    # Not kept for replay by id: its replay is a file's, or the sweep (were the set restricted).
    body = json.dumps({"event_id": event["id"]}).encode()
    answer = user_function("replay")(func.HttpRequest("POST", "/api/replay", body=body))
    assert answer.status_code == 404


def test_an_event_about_a_restricted_set_is_archived_and_its_redelivery_is_a_duplicate(
    estate: Estate, storage: StorageFaults
) -> None:
    estate.create_set("web", tags=STRIP)
    estate.events()
    event = docs.write_event(docs.set_id("web"))

    estate.take_in(event)
    storage.reset()
    estate.take_in(event)  # delivered again once handled

    records = records_of(estate, event["id"])
    assert [r.kind for r in records] == [RecordKind.RECEIVED, RecordKind.DECISION, RecordKind.DUPLICATE]
    received = records[0]
    assert received.archive and archived(estate) == [received.archive]
    assert records[1].reason.startswith("queued: a look at the set")
    ledger, sent = split_ledger(estate, storage.requests())
    assert appended(ledger) == 1 and len(ledger) == 1, "the duplicate record, appended to the ledger"
    assert [r.service for r in sent if r.service != "table"] == [], (
        "the duplicate is not archived again, nor queued"
    )


def test_an_event_whose_set_cannot_be_read_in_time_is_archived_and_handed_to_the_queue(
    estate: Estate,
) -> None:
    """Had ARM answered, this event (its set is not restricted) would have cost a read alone; ARM
    did not, so intake cannot know: it is archived and goes the way of every unresolved event."""
    estate.create_set("open")
    estate.events()
    event = docs.write_event(docs.set_id("open"))
    once = Faults(rate_503=1.0, max_faults=1, only_methods=frozenset({"GET"}), only_types=frozenset({SET}))
    estate.sim.set_faults(once)

    estate.take_in(event)

    (received,) = [r for r in records_of(estate, event["id"]) if r.kind is RecordKind.RECEIVED]
    assert received.archive and archived(estate) == [received.archive]
    assert estate.pump_rechecks() == 1, "a worker takes the event in, with ARM's full retries"
    decisions = [r.reason for r in records_of(estate, event["id"]) if r.kind is RecordKind.DECISION]
    assert "handed to the work queue" in decisions[0]
    assert decisions[1].startswith("not restricted")
