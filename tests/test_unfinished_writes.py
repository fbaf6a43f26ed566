"""Specification of the audit promise when writes end ambiguously or handlings stop half-way:
every ARM write ends with a known outcome in the log, and nothing remediation detached is left
behind. Given an estate, a fault and the events, this is written to ARM and to the audit log."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import arm_docs as docs
import pytest
from estate import Estate

from localazure.azurite import Azurite
from localazure.storage_faults import StorageFaults, StorageRequest
from remediation.audit import AuditLog
from remediation.cli import main
from remediation.credentials import LoopbackCredential
from remediation.model import RecordKind
from remediation.records import AuditRecord
from remediation.review import Filters
from remediation.settings import Settings
from sim import Faults, RequestRecord

STRIP = {"remediation.mode": "strip"}
NIC = "Microsoft.Network/networkInterfaces"
PUBLIC_IP = "Microsoft.Network/publicIPAddresses"


def deliver_until_done(estate: Estate, events: list[dict[str, Any]], attempts: int = 4) -> int:
    """Deliver, redelivering what failed as Event Grid would; returns how many deliveries failed."""
    failures = 0
    for _attempt in range(attempts):
        failed = []
        for event in events:
            try:
                estate.deliver(event)
            except Exception:  # noqa: BLE001 - the host answers 500 and Event Grid redelivers
                failed.append(event)
        failures += len(failed)
        estate.sim.wait_idle(30)
        events = failed
        if not events:
            break
    return failures


def records(estate: Estate) -> list[AuditRecord]:
    return estate.audit()


def outcomes_of(estate: Estate, action: str) -> list[AuditRecord]:
    return [r for r in records(estate) if r.kind is RecordKind.OUTCOME and r.action == action]


def verify(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["audit", "verify", "--since", "1h"])
    return code, capsys.readouterr().out


def lose_nic_put_answers(estate: Estate, count: int = 2) -> None:
    """ARM applies the NIC update, then the connection drops before the answer (on the retry too)."""
    estate.sim.set_faults(
        Faults(
            rate_timeout=1.0,
            timeout_hold_s=0.0,
            timeout_then_close=True,
            only_methods=frozenset({"PUT"}),
            only_types=frozenset({NIC}),
            max_faults=count,
        )
    )


def test_a_nic_put_whose_answer_is_lost_is_read_by_id_and_its_ip_deleted_in_the_same_handling(
    estate: Estate, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ARM_RETRY_TOTAL", "1")
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 1)
    (vm,) = estate.vms("web")
    (public_ip,) = estate.public_ips_of(vm)
    lose_nic_put_answers(estate)
    estate.deliver(estate.events()[0])
    estate.sim.set_faults(None)
    estate.sim.wait_idle(30)

    (outcome,) = outcomes_of(estate, "detach-public-ip")
    assert outcome.result == "succeeded", "ARM applied it, and a read of the NIC by id says so"
    assert "its answer was lost" in outcome.reason and "the NIC no longer carries" in outcome.reason
    assert estate.public_ips_of(vm) == []
    assert estate.sim.get_resource(public_ip) is None, "the detached public IP is deleted at once"
    assert verify(capsys)[0] == 0


def test_a_nic_put_whose_answer_and_read_are_lost_is_recorded_unknown_then_resolved(
    estate: Estate, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ARM_RETRY_TOTAL", "1")
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 1)
    (vm,) = estate.vms("web")
    (public_ip,) = estate.public_ips_of(vm)
    lose_nic_put_answers(estate)

    def reads_refused_after_the_put(record: RequestRecord) -> None:
        # Once the NIC PUT's retry is answered, the remediator's next reads (the NIC by id) are 429.
        if record.method == "PUT" and record.resource_type == NIC and record.status == 0:
            estate.sim.throttle_next(LoopbackCredential.APP_ID, "reads", 2)

    estate.sim.add_request_hook(reads_refused_after_the_put)
    events = estate.events()
    try:
        with pytest.raises(Exception, match=r"ServiceResponseError|answer was lost"):
            estate.deliver(events[0])
    finally:
        estate.sim.remove_request_hook(reads_refused_after_the_put)
    estate.sim.set_faults(None)
    estate.sim.wait_idle(30)

    (unknown,) = outcomes_of(estate, "detach-public-ip")
    assert unknown.result == "unknown", "the lost answer is recorded at once, not left open"
    assert estate.public_ips_of(vm) == [], "ARM did apply it"
    code, out = verify(capsys)
    assert code == 1 and "0 intents without outcome, 1 with an unknown outcome" in out

    deliver_until_done(estate, events)  # Event Grid redelivers: the set's next reconcile

    resolved = [r for r in outcomes_of(estate, "detach-public-ip") if r.reason.startswith("resolved:")]
    assert [r.result for r in resolved] == ["succeeded"]
    assert (
        "its answer did not say whether it applied; ARM shows the NIC no longer carries" in resolved[0].reason
    )
    assert resolved[0].intent_id == unknown.intent_id
    assert estate.sim.get_resource(public_ip) is None, "the detached public IP is deleted after all"
    assert verify(capsys)[0] == 0


def test_a_failed_detach_operation_leaves_neither_a_failed_nic_nor_a_public_ip(estate: Estate) -> None:
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 1)
    (vm,) = estate.vms("web")
    (public_ip,) = estate.public_ips_of(vm)
    nic_id = vm["properties"]["networkProfile"]["networkInterfaces"][0]["id"]
    # The NIC update is accepted and its operation fails after taking effect: NIC Failed, IP dangling.
    estate.sim.fail_next_operation(nic_id, code="InternalServerError", message="the update failed")

    failures = deliver_until_done(estate, estate.events())

    assert failures == 1, "the failed detach failed its delivery once; the redelivery finished it"
    nic = estate.sim.get_resource(nic_id)
    assert nic is not None and nic["properties"]["provisioningState"] == "Succeeded"
    assert estate.sim.get_resource(public_ip) is None
    intents = [r.action for r in records(estate) if r.kind is RecordKind.INTENT]
    assert intents == ["detach-public-ip", "repair-nic", "delete-public-ip"]
    (delete,) = [r for r in records(estate) if r.kind is RecordKind.INTENT and r.action == "delete-public-ip"]
    assert "detached from instance" in delete.reason and delete.public_ip.lower() == public_ip.lower()


def test_an_audit_outage_between_a_detach_and_its_delete_leaves_no_public_ip(
    estate: Estate, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setenv("STORAGE_RETRY_TOTAL", "0")
    azurite = Azurite(persistent=True).start()  # its own, on disk: stopped and started again
    request.addfinalizer(azurite.close)
    estate.environment["RemediationStorage"] = azurite.connection_string
    monkeypatch.setenv("RemediationStorage", azurite.connection_string)
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 1)
    (vm,) = estate.vms("web")
    (public_ip,) = estate.public_ips_of(vm)

    from remediation.act import Executor
    from remediation.model import ActionKind

    perform = Executor._perform

    def detach_then_lose_storage(self: Executor, action: Any) -> Any:
        result = perform(self, action)
        if action.kind is ActionKind.DETACH_PUBLIC_IP:
            azurite.stop()  # the delete's intent cannot be stored: the handling stops there
        return result

    monkeypatch.setattr(Executor, "_perform", detach_then_lose_storage)
    events = estate.events()
    with pytest.raises(Exception, match="audit"):
        estate.deliver(events[0])
    azurite.restart()
    monkeypatch.setattr(Executor, "_perform", perform)
    assert estate.public_ips_of(vm) == [] and estate.sim.get_resource(public_ip) is not None

    estate.lapse_visibility()  # the failed look reappears once the host's hold on it lapses
    deliver_until_done(estate, events)  # its retry sees no finding: the NIC has no public IP

    assert estate.sim.get_resource(public_ip) is None, "found from the detach intent and deleted"


def detach_then_fail_the_delete(estate: Estate) -> tuple[dict[str, Any], str]:
    """A set whose one instance was stripped, and whose public IP's deletion ARM accepted and failed."""
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 1)
    (vm,) = estate.vms("web")
    (public_ip,) = estate.public_ips_of(vm)
    estate.sim.fail_next_operation(public_ip, code="InternalServerError", message="the deletion failed")
    deliver_until_done(estate, estate.events()[-1:], attempts=1)
    assert estate.public_ips_of(vm) == [] and estate.sim.get_resource(public_ip) is not None
    return vm, public_ip


def test_a_leftover_public_ip_is_not_deleted_once_its_instance_is_exempt(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATION_POLICY", json.dumps({"monitored_subscriptions": [docs.SUB]}))
    vm, public_ip = detach_then_fail_the_delete(estate)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    estate.tag(vm["id"], {"remediation.exempt-until": tomorrow})
    deletes = len(estate.successful("DELETE", PUBLIC_IP))

    estate.sweep(past_due=False)
    estate.pump_rechecks()  # the looks the sweep queued

    assert len(estate.successful("DELETE", PUBLIC_IP)) == deletes
    assert estate.sim.get_resource(public_ip) is not None
    left = [r.reason for r in records(estate) if r.kind is RecordKind.DECISION and "left:" in r.reason]
    assert left and f"left: exempt until {tomorrow}" in left[-1]


def test_a_leftover_public_ip_is_kept_when_the_policy_keeps_detached_ips(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, public_ip = detach_then_fail_the_delete(estate)
    policy = {"monitored_subscriptions": [docs.SUB], "keep_detached_public_ips": True}
    monkeypatch.setenv("REMEDIATION_POLICY", json.dumps(policy))
    deletes = len(estate.successful("DELETE", PUBLIC_IP))

    estate.sweep(past_due=False)
    estate.pump_rechecks()  # the looks the sweep queued

    assert len(estate.successful("DELETE", PUBLIC_IP)) == deletes
    assert estate.sim.get_resource(public_ip) is not None


def an_interrupted_intent(estate: Estate, **fields: Any) -> AuditRecord:
    """An intent stored by a handling that died before its write (older than any grace period)."""
    record = AuditRecord(
        RecordKind.INTENT,
        event_id="died-mid-write",
        time=datetime.now(UTC) - timedelta(minutes=30),
        **fields,
    )
    AuditLog(Settings.from_env(estate.environment)).append(record)
    return record


def test_intents_of_a_deleted_set_are_closed_by_the_sweep(
    estate: Estate, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REMEDIATION_POLICY", json.dumps({"monitored_subscriptions": [docs.SUB]}))
    gone = docs.set_id("gone")
    an_interrupted_intent(estate, action="set-capacity-zero", target=gone, scale_set=gone)
    assert verify(capsys)[0] == 1

    estate.sweep(past_due=False)
    estate.pump_rechecks()  # the looks the sweep queued

    (resolved,) = [r for r in records(estate) if r.kind is RecordKind.OUTCOME]
    assert resolved.result == "skipped" and "the scale set no longer exists" in resolved.reason
    assert verify(capsys)[0] == 0


def test_intents_of_a_set_no_longer_restricted_are_closed_by_the_sweep(
    estate: Estate, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REMEDIATION_POLICY", json.dumps({"monitored_subscriptions": [docs.SUB]}))
    estate.create_set("web")  # no restriction any more
    estate.scale("web", 1)
    (vm,) = estate.vms("web")
    nic_id = vm["properties"]["networkProfile"]["networkInterfaces"][0]["id"]
    an_interrupted_intent(
        estate,
        action="detach-public-ip",
        target=nic_id,
        nic=nic_id,
        scale_set=docs.set_id("web"),
        public_ip=estate.public_ips_of(vm)[0],
    )
    deliver_until_done(estate, estate.events())  # an event about an unrestricted set: one read, no more
    assert verify(capsys)[0] == 1

    estate.sweep(past_due=False)
    estate.pump_rechecks()  # the looks the sweep queued

    (resolved,) = [r for r in records(estate) if r.kind is RecordKind.OUTCOME]
    assert resolved.result == "failed" and "ARM shows the NIC still carries public IP" in resolved.reason
    assert verify(capsys)[0] == 0


def test_an_interrupted_model_change_is_judged_by_the_model_not_by_the_capacity(estate: Estate) -> None:
    estate.create_uniform_set("uni", tags=STRIP)  # capacity 0, a public IP per instance in its model
    an_interrupted_intent(
        estate, action="remove-public-ip-from-model", target=docs.set_id("uni"), scale_set=docs.set_id("uni")
    )

    deliver_until_done(estate, estate.events())

    outcomes = [r for r in records(estate) if r.kind is RecordKind.OUTCOME]
    (resolved,) = [r for r in outcomes if r.reason.startswith("resolved")]
    assert resolved.result == "failed", "capacity 0 says nothing about the model"
    assert "the set's model still gives each instance a public IP" in resolved.reason
    # ... and the reconcile that judged it removes the public IP from the model itself.
    intents = [r.action for r in records(estate) if r.kind is RecordKind.INTENT]
    assert intents[-1] == "remove-public-ip-from-model"
    assert estate.successful("PATCH", "Microsoft.Compute/virtualMachineScaleSets") == [docs.set_id("uni")]


def test_an_event_that_cannot_be_archived_is_still_remediated(estate: Estate, storage: StorageFaults) -> None:
    # The archive's and the leases' containers are down; the audit ledger, in the same account,
    # answers (without it no record could be stored, and nothing would be written to ARM).
    down = [f"/{estate.environment[name]}" for name in ("ARCHIVE_CONTAINER", "LOCK_CONTAINER")]
    storage.refuse(lambda r: r.service == "blob" and any(name in r.path for name in down))
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 1)

    deliver_until_done(estate, estate.events(), attempts=1)

    assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))
    received = [r for r in records(estate) if r.kind is RecordKind.RECEIVED]
    assert received and all(r.archive == "" and r.error.startswith("not archived:") for r in received)
    unguarded = [r for r in records(estate) if r.reason.startswith("reconciled without the set's lease")]
    assert unguarded, "the lease needs Blob storage too: the set is reconciled without it, and that is said"


@pytest.fixture
def storage(estate: Estate, monkeypatch: pytest.MonkeyPatch) -> Iterator[StorageFaults]:
    """The audit log behind a storage fault proxy; each storage request is tried once."""
    with StorageFaults(estate.local.azurite) as proxy:
        estate.environment["RemediationStorage"] = proxy.connection_string
        monkeypatch.setenv("RemediationStorage", proxy.connection_string)
        monkeypatch.setenv("STORAGE_RETRY_TOTAL", "0")
        yield proxy


def batch_with(*texts: str) -> Callable[[StorageRequest], bool]:
    wanted = [text.encode() for text in texts]
    return lambda r: (
        r.method == "POST"
        and r.path.split("?")[0].endswith("$batch")
        and all(text in r.body for text in wanted)
    )


def ledger_append_with(*texts: str) -> Callable[[StorageRequest], bool]:
    """An Append Block to the audit ledger holding ``texts`` (its lines are compact JSON)."""
    wanted = [text.encode() for text in texts]
    return lambda r: "comp=appendblock" in r.path and all(text in r.body for text in wanted)


def test_an_intent_that_could_not_be_stored_is_closed_as_skipped_once_storage_is_back(
    estate: Estate, storage: StorageFaults, capsys: pytest.CaptureFixture[str]
) -> None:
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 1)
    (vm,) = estate.vms("web")
    (public_ip,) = estate.public_ips_of(vm)
    # After the detach intent is stored (its copies, then its ledger line), the next storage request
    # fails: the batch that carries the delete's intent. The handling stops there; storage is back
    # for its last flush.
    storage.fail_after(ledger_append_with('"kind":"intent"', '"action":"detach-public-ip"'), 1)
    events = estate.events()[-1:]
    with pytest.raises(Exception, match="audit"):
        estate.deliver(events[0])
    assert storage.failures == 1
    assert estate.sim.get_resource(public_ip) is not None, "the delete never went out"

    (delete,) = [r for r in records(estate) if r.kind is RecordKind.INTENT and r.action == "delete-public-ip"]
    (skipped,) = [r for r in outcomes_of(estate, "delete-public-ip") if r.intent_id == delete.record_id]
    assert skipped.result == "skipped" and "not written: the audit store failed" in skipped.reason
    assert verify(capsys)[0] == 0

    deliver_until_done(estate, events)
    assert estate.sim.get_resource(public_ip) is None


def test_an_event_is_marked_handled_only_after_all_its_records_are_stored(
    estate: Estate, storage: StorageFaults
) -> None:
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 1)
    # The intake's flush: its copies by event are stored, the next one (by time) fails.
    storage.fail_after(batch_with("queued: a look at the set", '"PartitionKey": "e-'), 1)
    (event,) = estate.events()[-1:]
    with pytest.raises(Exception, match="audit"):
        estate.take_in(event)

    estate.take_in(event)  # Event Grid redelivers: not taken for a duplicate

    now = datetime.now(UTC)
    by_event = Filters(now - timedelta(hours=1), now, event_id=event["id"])
    kinds = [r.kind for r in AuditLog(Settings.from_env(estate.environment)).search(by_event)]
    assert RecordKind.DUPLICATE not in kinds and kinds.count(RecordKind.RECEIVED) == 2


def test_a_batch_stored_but_never_acknowledged_is_stored_again_without_a_conflict(
    estate: Estate, storage: StorageFaults, capsys: pytest.CaptureFixture[str]
) -> None:
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 1)
    (vm,) = estate.vms("web")
    # Azurite commits the detach intent's copy by set, and the answer is lost.
    storage.lose_answer(batch_with('"action": "detach-public-ip"', '"PartitionKey": "s-'))
    events = estate.events()[-1:]
    with pytest.raises(Exception, match="audit"):
        estate.deliver(events[0])
    assert storage.answers_lost == 1
    assert len(estate.public_ips_of(vm)) == 1, "no ARM write without its intent stored"

    deliver_until_done(estate, events)

    assert estate.public_ips_of(vm) == []
    intents = [r for r in records(estate) if r.kind is RecordKind.INTENT and r.action == "detach-public-ip"]
    assert len({r.record_id for r in intents}) == len(intents) == 2, "each stored once, the retry upserted"
    assert verify(capsys)[0] == 0
