"""Specification of the audit log: every write announced before it happens and closed after,
reviewable by time, set, event, correlation id and failure, verifiable, and replayable from the
archive, from a file and from Event Grid's dead letters, through the CLI and over HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import arm_docs as docs
import azure.functions as func
import pytest
from azure.storage.blob import BlobServiceClient
from estate import Estate

from localazure.azurite import Azurite
from localazure.host import indexed_functions, user_function
from remediation.audit import AuditLog
from remediation.cli import main
from remediation.model import RecordKind
from remediation.records import AuditRecord
from remediation.review import Filters
from remediation.settings import Settings

STRIP = {"remediation.mode": "strip"}


def remediated_storm(estate: Estate, size: int = 3) -> list[dict[str, Any]]:
    estate.create_set("web", tags=STRIP)
    estate.scale("web", size)
    events = estate.events()
    for event in events:
        estate.deliver(event)
    estate.sim.wait_idle(30)
    return events


def log(estate: Estate) -> AuditLog:
    return AuditLog(Settings.from_env(estate.environment))


def window(scale_set: str = "", event_id: str = "", correlation_id: str = "", outcome: str = "") -> Filters:
    now = datetime.now(UTC)
    return Filters(
        now - timedelta(hours=1), now + timedelta(minutes=1), scale_set, event_id, correlation_id, outcome
    )


def test_every_arm_write_is_an_intent_closed_by_its_outcome_in_the_json_review(
    estate: Estate, capsys: pytest.CaptureFixture[str]
) -> None:
    remediated_storm(estate)

    assert main(["audit", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)

    intents = [r for r in records if r["kind"] == "intent"]
    outcomes = {r["intent_id"]: r for r in records if r["kind"] == "outcome"}
    writes = estate.successful("PUT", "Microsoft.Network/networkInterfaces") + estate.successful(
        "DELETE", "Microsoft.Network/publicIPAddresses"
    )
    assert len(intents) == len(writes) == 6
    for intent in intents:
        outcome = outcomes[intent["record_id"]]
        assert outcome["result"] == "succeeded" and outcome["arm_request_id"]
        assert outcome["state_before"] and outcome["state_after"] and outcome["exposed_since"]
        assert intent["time"] <= outcome["time"]


def test_the_log_answers_by_set_by_event_by_correlation_and_what_failed(estate: Estate) -> None:
    events = remediated_storm(estate, size=2)
    estate.deliver({**events[0], "id": "bad-one", "data": "not an object"})
    audit = log(estate)

    by_set = list(audit.search(window(scale_set=docs.set_id("web"))))
    assert by_set and all(r.scale_set.lower() == docs.set_id("web").lower() for r in by_set)
    assert {r.kind for r in by_set} >= {RecordKind.DECISION, RecordKind.INTENT, RecordKind.OUTCOME}

    scale_out = events[-1]
    by_event = list(audit.search(window(event_id=scale_out["id"])))
    assert by_event and all(r.event_id == scale_out["id"] for r in by_event)
    by_correlation = list(audit.search(window(correlation_id=scale_out["data"]["correlationId"])))
    assert {r.record_id for r in by_correlation} >= {r.record_id for r in by_event if r.correlation_id}

    assert [r.event_id for r in audit.search(window(outcome="rejected"))] == ["bad-one"]
    assert list(audit.search(window(outcome="failed"))) == []


def test_http_audit_pages_through_the_log_with_a_continuation_token(estate: Estate) -> None:
    remediated_storm(estate)
    audit_endpoint = user_function("audit")
    seen: list[dict[str, Any]] = []
    token = ""
    for _ in range(50):
        params = {"since": "1h", "page_size": "5", **({"continuation": token} if token else {})}
        response = audit_endpoint(func.HttpRequest("GET", "/api/audit", params=params, body=b""))
        assert response.status_code == 200
        page = json.loads(response.get_body())
        assert len(page["records"]) <= 5
        seen.extend(page["records"])
        token = page["continuation"]
        if not token:
            break
    expected = list(log(estate).search(window()))
    assert [r["record_id"] for r in seen] == [r.record_id for r in expected]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "yesterday"}, "since: 'yesterday' is not a duration"),
        ({"until": "noon"}, "until: 'noon' is not an ISO 8601 time"),
        ({"outcome": "exploded"}, "outcome: 'exploded' is not one of"),
        ({"page_size": "0"}, "page_size: '0' is not a whole number"),
        ({"continuation": "!!"}, "continuation: continuation token is not one this service issued"),
    ],
)
def test_http_audit_names_the_bad_parameter(estate: Estate, params: dict[str, str], message: str) -> None:
    response = user_function("audit")(func.HttpRequest("GET", "/api/audit", params=params, body=b""))
    assert response.status_code == 400
    assert message in json.loads(response.get_body())["error"]


def test_the_endpoints_require_keys() -> None:
    levels = {
        name: binding.auth_level
        for name, function in indexed_functions().items()
        for binding in function.get_bindings()
        if binding.type == "httpTrigger"
    }
    assert levels == {
        "audit": func.AuthLevel.FUNCTION,
        "replay": func.AuthLevel.ADMIN,
        "doctor": func.AuthLevel.ADMIN,
    }


def test_verify_reports_an_intent_that_no_outcome_closes(
    estate: Estate, capsys: pytest.CaptureFixture[str]
) -> None:
    remediated_storm(estate, size=1)
    assert main(["audit", "verify", "--since", "1h"]) == 0
    assert "0 intents without outcome" in capsys.readouterr().out

    log(estate).append(AuditRecord(RecordKind.INTENT, event_id="lost", action="detach-public-ip"))
    assert main(["audit", "verify", "--since", "1h"]) == 1
    assert "1 intents without outcome" in capsys.readouterr().out


def test_replaying_every_archived_event_writes_nothing_and_is_recorded_as_replays(
    estate: Estate, capsys: pytest.CaptureFixture[str]
) -> None:
    events = remediated_storm(estate)
    writes = estate.arm_writes()

    assert main(["replay", "--since", "1h"]) == 0
    out = capsys.readouterr().out
    assert f"{len(events)} events queued" in out
    replay_id = out.split(":", 1)[0].rsplit("\n", 1)[-1]
    assert estate.pump_rechecks() >= len(events), "the replay's events wait in the work queue"

    assert estate.arm_writes() == writes, "a remediated event replays to no ARM write"
    replays = [r for r in log(estate).search(window()) if r.replay_of]
    assert {r.replay_of for r in replays} == {e["id"] for e in events}
    assert {r.event_id for r in replays} == {replay_id}, (
        "every replayed event is recorded under the replay's id"
    )


def test_one_event_replays_by_id_and_a_file_replays_too(
    estate: Estate, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 2)
    events = estate.events()
    estate.deliver(events[0])  # the scale-out event is lost; we replay it from a file

    path = tmp_path / "events.json"
    path.write_text(json.dumps(events[1:]))
    assert main(["replay", "--file", str(path)]) == 0
    estate.pump_rechecks()
    assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))

    writes = estate.arm_writes()
    assert main(["replay", "--event-id", events[0]["id"], "--dry-run"]) == 0
    assert "1 events queued (dry run)" in capsys.readouterr().out
    estate.pump_rechecks()
    assert estate.arm_writes() == writes


def test_a_dead_letter_blob_in_event_grids_format_replays(
    estate: Estate, capsys: pytest.CaptureFixture[str]
) -> None:
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 2)
    lost = estate.events()[-1]
    dead = {
        **lost,
        "deadLetterReason": "MaxDeliveryAttemptsExceeded",
        "deliveryAttempts": 30,
        "lastDeliveryOutcome": "Probation",
        "publishTime": lost["eventTime"],
        "lastDeliveryAttemptTime": datetime.now(UTC).isoformat(),
        "lastHttpStatusCode": 500,
    }
    blobs = BlobServiceClient.from_connection_string(estate.environment["RemediationStorage"])
    container = blobs.get_container_client("eventgrid-deadletter")
    if not container.exists():
        container.create_container()
    name = f"SUBSCRIPTION-TOPIC/REMEDIATOR/{datetime.now(UTC):%Y/%m/%d/%H}/{lost['id']}.json"
    container.upload_blob(name, json.dumps([dead]), overwrite=True)

    assert main(["replay", "--dead-letter", "eventgrid-deadletter"]) == 0
    estate.pump_rechecks()
    assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))
    received = [
        r for r in log(estate).search(window()) if r.kind is RecordKind.RECEIVED and r.replay_of == lost["id"]
    ]
    assert received and "dead-lettered (MaxDeliveryAttemptsExceeded) after 30 attempts" in received[0].reason
    container.delete_blob(name)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"[1]", 400, "body: expected a JSON object"),
        (b"{", 400, "body: not JSON"),
        (b"{}", 400, "give exactly one of event_id, since, events, dead_letter, poison"),
        (b'{"poison": "forever"}', 400, "poison: "),
        (b'{"since": "2h", "event_id": "x"}', 400, "give exactly one of"),
        (b'{"since": 3}', 400, "since: expected a duration"),
        (b'{"events": {}}', 400, "events: expected a list of events"),
        (b'{"event_id": "never-seen"}', 404, "no archived event with id 'never-seen'"),
        (b'{"events": [], "dry_run": "yes"}', 400, "dry_run: expected true or false"),
    ],
)
def test_http_replay_names_what_is_wrong_with_the_body(
    estate: Estate, body: bytes, status: int, message: str
) -> None:
    response = user_function("replay")(func.HttpRequest("POST", "/api/replay", body=body))
    assert response.status_code == status
    assert message in json.loads(response.get_body())["error"]


def test_http_replay_of_given_events_goes_through_the_pipeline(estate: Estate) -> None:
    events = remediated_storm(estate, size=1)
    writes = estate.arm_writes()
    body = json.dumps({"events": [*events, "garbage"]}).encode()

    response = user_function("replay")(func.HttpRequest("POST", "/api/replay", body=body))

    assert response.status_code == 202, "queued, not run inside the request"
    answer = json.loads(response.get_body())
    assert answer["queued"] == len(events) + 1
    replay_id = answer["replay_id"]
    progress = user_function("audit")(
        func.HttpRequest("GET", "/api/audit", params={"event_id": replay_id}, body=b"")
    )
    (queued,) = json.loads(progress.get_body())["records"]
    assert queued["reason"].startswith(f"replay: {len(events) + 1} events queued")

    estate.pump_rechecks()
    progress = user_function("audit")(
        func.HttpRequest("GET", "/api/audit", params={"event_id": replay_id}, body=b"")
    )
    records = json.loads(progress.get_body())["records"]
    assert [r["kind"] for r in records].count("received") == len(events)
    assert [r["kind"] for r in records].count("rejected") == 1, "the garbage, named"
    assert estate.arm_writes() == writes


def test_storage_outage_mid_storm_writes_nothing_unannounced_and_redelivery_finishes(
    estate: Estate,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    monkeypatch.setenv("STORAGE_RETRY_TOTAL", "0")  # fail fast: Event Grid is the retry
    monkeypatch.setenv("INTERRUPTED_WRITE_GRACE_SECONDS", "0")
    azurite = Azurite(persistent=True).start()  # its own, on disk: it is stopped and started again
    request.addfinalizer(azurite.close)
    estate.environment["RemediationStorage"] = azurite.connection_string
    monkeypatch.setenv("RemediationStorage", azurite.connection_string)
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 6)
    events = estate.events()

    from remediation.act import Executor

    perform = Executor._perform
    performed: list[str] = []

    def perform_then_lose_storage(self: Executor, action: Any) -> Any:
        performed.append(action.target.value)
        if len(performed) == 3:  # the third write's intent is stored; then storage goes away
            azurite.stop()
        return perform(self, action)

    monkeypatch.setattr(Executor, "_perform", perform_then_lose_storage)
    failed = []
    try:
        for event in events:
            try:
                estate.deliver(event)
            except Exception:  # noqa: BLE001 - the host answers 500 and Event Grid redelivers
                failed.append(event)
    finally:
        azurite.restart()
    monkeypatch.setattr(Executor, "_perform", perform)
    assert failed, "the handling failed while storage was down"
    written = estate.successful("PUT", "Microsoft.Network/networkInterfaces") + estate.successful(
        "DELETE", "Microsoft.Network/publicIPAddresses"
    )
    announced = {r.nic.lower() for r in log(estate).search(window(outcome="intent"))} | {
        r.public_ip.lower() for r in log(estate).search(window(outcome="intent"))
    }
    assert written and all(any(path.lower() in target for target in announced) for path in written), (
        "no ARM write happened without its intent stored first"
    )

    for event in failed:  # Event Grid redelivers
        estate.deliver(event)

    assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))
    assert main(["audit", "verify", "--since", "1h"]) == 0
    assert "0 intents without outcome" in capsys.readouterr().out
    recovered = [r for r in log(estate).search(window()) if r.reason.startswith("resolved:")]
    assert recovered, "the interrupted write was closed from what ARM shows"


def test_each_stored_record_is_also_a_structured_log_record(
    estate: Estate, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="remediation.audit"):
        remediated_storm(estate, size=1)
    logged = [r.__dict__ for r in caplog.records if r.name == "remediation.audit"]
    stored = list(log(estate).search(window()))
    assert sorted(r["audit_record_id"] for r in logged) == sorted(r.record_id for r in stored)
    intent = next(r for r in logged if r["audit_kind"] == "intent")
    assert intent["audit_scale_set"] == docs.set_id("web") and intent["audit_action"]
