"""Specification of the remediation engine: every mode, storms of duplicated and reordered events,
re-checks of sets still growing, exemptions and configured scopes.

Given an estate in the ARM simulator and the events its writes raise, delivered to the indexed
function app, this is what is written to ARM and to the audit log.
"""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import arm_docs as docs
import pytest
from estate import Estate

from remediation.arm_errors import ArmError
from remediation.model import RecordKind
from sim import Faults

SET = "Microsoft.Compute/virtualMachineScaleSets"

NIC = "Microsoft.Network/networkInterfaces"
PUBLIC_IP = "Microsoft.Network/publicIPAddresses"
VMSS = "Microsoft.Compute/virtualMachineScaleSets"


def test_a_storm_of_triplicated_reordered_events_writes_each_nic_once(estate: Estate) -> None:
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.scale("web", 6)
    events = estate.events() * 3
    random.Random(7).shuffle(events)

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(estate.deliver, events))
    estate.sim.wait_idle(30)
    for event in estate.events():  # the remediator's own NIC writes raise events too
        estate.deliver(event)

    puts = estate.successful("PUT", NIC)
    deletes = estate.successful("DELETE", PUBLIC_IP)
    assert len(puts) == len(set(puts)) == 6, "exactly one successful PUT per violating NIC"
    assert len(deletes) == len(set(deletes)) == 6, "exactly one DELETE per public IP"
    assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))
    kinds = [r.kind for r in estate.audit()]
    assert kinds.count(RecordKind.INTENT) == 12 and kinds.count(RecordKind.OUTCOME) == 12


def test_a_set_write_seen_before_its_instances_exist_is_rechecked_from_the_queue(estate: Estate) -> None:
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.events()
    body = estate.compute.virtual_machine_scale_sets.get(docs.GROUP, "web").as_dict()
    body["sku"]["capacity"] = 3
    early = docs.write_event(docs.set_id("web"), event_id="early-event")
    with estate.sim.operations_held():  # ARM accepted the scale-out; no instance exists yet
        estate.compute.virtual_machine_scale_sets.begin_create_or_update(docs.GROUP, "web", body)
        estate.take_in(early)
        assert estate.pump_once() == 1, "the event's look: it finds no instance yet"
    assert estate.successful("PUT", NIC) == []
    estate.sim.wait_idle(30)
    # Two looks were queued: the watch's next (the set grows) and the first delayed re-check, its
    # fallback; the first strips the three, the second finds nothing left to do.
    assert estate.pump_rechecks() == 2

    assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))
    assert len(estate.successful("PUT", NIC)) == 3
    rechecks = [r.reason for r in estate.audit() if "re-check 1" in r.reason]
    assert rechecks and rechecks[0].endswith("re-check 1 in 0 s")


def test_evict_deletes_only_the_violating_scale_set_instances(estate: Estate) -> None:
    estate.create_set("web", tags={"remediation.mode": "evict"})
    estate.attach_by_hand("web", "app-vm-01")
    estate.scale("web", 3)
    for event in estate.events():
        estate.deliver(event)
    estate.sim.wait_idle(30)

    assert [vm["name"] for vm in estate.vms("web")] == ["app-vm-01"]
    assert len(estate.successful("DELETE", "Microsoft.Compute/virtualMachines")) == 3
    verified = [r for r in estate.audit() if r.kind is RecordKind.VERIFIED]
    assert len(verified) == 3 and all(r.mode == "evict" for r in verified)


def test_scale_to_zero_refuses_while_hand_added_vms_could_go(estate: Estate) -> None:
    estate.create_set("web", tags={"remediation.mode": "scale-to-zero"})
    estate.attach_by_hand("web", "app-vm-01")
    estate.scale("web", 2)
    writes = estate.arm_writes()
    for event in estate.events():
        estate.deliver(event)

    assert estate.arm_writes() == writes
    reasons = [r.reason for r in estate.audit() if r.kind is RecordKind.DECISION]
    assert any(
        r.startswith("scale-to-zero refused: the set has VMs it did not create (app-vm-01)") for r in reasons
    )
    assert any(r.startswith("capacity 2 -> 0 would delete: web_") for r in reasons)


def test_scale_to_zero_sets_capacity_zero_when_only_its_own_instances_exist(estate: Estate) -> None:
    estate.create_set("web", tags={"remediation.mode": "scale-to-zero"})
    estate.scale("web", 2)
    built = len(estate.sim.requests())
    for event in estate.events():
        estate.deliver(event)
    estate.sim.wait_idle(30)

    assert estate.compute.virtual_machine_scale_sets.get(docs.GROUP, "web").sku.capacity == 0
    assert estate.vms("web") == []
    assert [r.action for r in estate.audit() if r.kind is RecordKind.INTENT] == ["set-capacity-zero"]
    writes = estate.successful("PATCH", VMSS, built), estate.successful("PUT", VMSS, built)
    assert writes == ([docs.set_id("web")], []), "a PATCH of the capacity alone, not the whole set"


def test_a_current_exemption_is_honoured_and_an_expired_one_is_not(estate: Estate) -> None:
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.scale("web", 2)
    exempt, expired = sorted(vm["id"] for vm in estate.vms("web"))
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    estate.tag(exempt, {"remediation.exempt-until": tomorrow, "remediation.exempt-reason": "INC-7 forensics"})
    estate.tag(expired, {"remediation.exempt-until": "2020-01-01"})
    for event in estate.events():
        estate.deliver(event)

    by_id = {vm["id"]: estate.public_ips_of(vm) for vm in estate.vms("web")}
    assert len(by_id[exempt]) == 1, "exempt until tomorrow: untouched"
    assert by_id[expired] == [], "an expired exemption is remediated"
    decisions = [r for r in estate.audit() if r.kind is RecordKind.DECISION]
    reasons = {r.reason for r in decisions if r.instance == exempt}
    assert (
        f"exempt until {tomorrow} by tag remediation.exempt-until={tomorrow!r} on the VM; "
        "reason 'INC-7 forensics'"
    ) in reasons
    expired_name = expired.rsplit("/", 1)[-1]
    assert (
        f"instance {expired_name}: tag remediation.exempt-until='2020-01-01' on the VM ignored: "
        "expired on 2020-01-01"
    ) in {r.reason for r in decisions}


def test_a_resource_group_restricted_by_configuration_is_remediated_without_a_tag(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = {
        "scopes": [{"scope": f"/subscriptions/{docs.SUB}/resourceGroups/{docs.GROUP}", "mode": "strip"}]
    }
    monkeypatch.setenv("REMEDIATION_POLICY", json.dumps(policy))
    estate.create_set("web")
    estate.scale("web", 2)
    for event in estate.events():
        estate.deliver(event)

    assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))
    assert any("configured scope" in r.reason for r in estate.audit() if r.kind is RecordKind.DECISION)


def test_events_about_unmonitored_subscriptions_are_rejected(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = "11111111-2222-3333-4444-555555555555"
    monkeypatch.setenv("REMEDIATION_POLICY", json.dumps({"monitored_subscriptions": [other]}))
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.scale("web", 1)
    writes = estate.arm_writes()
    for event in estate.events():
        estate.deliver(event)

    assert estate.arm_writes() == writes
    rejected = [r.reason for r in estate.audit() if r.kind is RecordKind.REJECTED]
    assert rejected and all(r == f"subscription {docs.SUB} is not monitored" for r in rejected)


def test_a_sweep_or_a_queued_look_at_an_unmonitored_subscription_is_refused_with_a_rejected_record(
    estate: Estate, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from remediation.cli import main
    from remediation.model import Recheck
    from remediation.resource_ids import ResourceId
    from remediation.settings import Settings
    from remediation.work_queue import RecheckQueue

    other = "11111111-2222-3333-4444-555555555555"
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.scale("web", 1)
    estate.events()  # never delivered
    monkeypatch.setenv("REMEDIATION_POLICY", json.dumps({"monitored_subscriptions": [other]}))
    for name, value in estate.environment.items():
        monkeypatch.setenv(name, value)
    requests = len(estate.sim.requests())

    assert main(["sweep", "--subscription", docs.SUB]) == 1
    assert f"refused: subscription {docs.SUB} is not monitored" in capsys.readouterr().out
    # A look queued before the policy changed (or by anyone else who can write to the queue).
    RecheckQueue(Settings.from_env(estate.environment)).schedule(
        Recheck(ResourceId.parse(docs.set_id("web")), 0, "queued earlier"), 0
    )
    estate.pump_rechecks()

    assert estate.sim.requests()[requests:] == [], "nothing read, nothing written"
    assert all(len(estate.public_ips_of(vm)) == 1 for vm in estate.vms("web"))
    rejected = [r.reason for r in estate.audit() if r.kind is RecordKind.REJECTED]
    assert rejected == [
        f"sweep of subscription {docs.SUB}: it is not monitored",
        f"look at {docs.set_id('web')} refused: subscription {docs.SUB} is not monitored",
    ]


def test_the_sweep_queues_a_look_at_each_restricted_set_whose_events_were_lost(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATION_POLICY", json.dumps({"monitored_subscriptions": [docs.SUB]}))
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.create_set("open")
    estate.scale("web", 2)
    estate.scale("open", 2)
    estate.events()  # lost: never delivered
    requests = len(estate.sim.requests())

    estate.sweep(past_due=True)
    swept = estate.sim.requests()[requests:]
    assert {(r.method, r.resource_type) for r in swept} == {("POST", "Microsoft.ResourceGraph/resources")}, (
        "the sweep itself only asks Resource Graph; the reconciles are the queue's"
    )
    assert estate.pump_rechecks() == 1, "one look, for the one restricted set"

    assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))
    assert all(len(estate.public_ips_of(vm)) == 1 for vm in estate.vms("open"))
    (summary,) = [r.reason for r in estate.audit() if r.reason.startswith("sweep of")]
    assert summary.endswith("2 scale sets, 1 restricted; 0 unfinished writes judged from the log")


def test_strip_on_a_uniform_set_changes_its_model_and_upgrades_the_instances(estate: Estate) -> None:
    estate.create_uniform_set("uni", tags={"remediation.mode": "strip"})
    estate.scale("uni", 3)
    for event in estate.events():
        estate.deliver(event)
    estate.sim.wait_idle(30)

    assert estate.uniform_public_ips("uni") == {"0": [], "1": [], "2": []}
    model = estate.compute.virtual_machine_scale_sets.get(docs.GROUP, "uni").as_dict()
    ip_config = model["properties"]["virtualMachineProfile"]["networkProfile"][
        "networkInterfaceConfigurations"
    ][0]["properties"]["ipConfigurations"][0]
    assert "publicIPAddressConfiguration" not in ip_config["properties"]
    actions = [r.action for r in estate.audit() if r.kind is RecordKind.INTENT]
    assert actions == ["remove-public-ip-from-model", "upgrade-instances"]
    assert estate.successful("PATCH", VMSS) == [docs.set_id("uni")], "the model's NICs alone"
    assert len([r for r in estate.audit() if r.kind is RecordKind.VERIFIED]) == 3


def test_evict_on_a_uniform_set_deletes_its_instances(estate: Estate) -> None:
    estate.create_uniform_set("uni", tags={"remediation.mode": "evict"})
    estate.scale("uni", 2)
    for event in estate.events():
        estate.deliver(event)
    estate.sim.wait_idle(30)

    assert estate.uniform_public_ips("uni") == {}
    assert len(estate.successful("DELETE", "Microsoft.Compute/virtualMachineScaleSets/virtualMachines")) == 2


def test_scale_to_zero_and_audit_on_uniform_sets(estate: Estate) -> None:
    estate.create_uniform_set("zero", tags={"remediation.mode": "scale-to-zero"})
    estate.create_uniform_set("watch", tags={"remediation.mode": "audit"})
    estate.scale("zero", 2)
    estate.scale("watch", 2)
    for event in estate.events():
        estate.deliver(event)
    estate.sim.wait_idle(30)

    assert estate.compute.virtual_machine_scale_sets.get(docs.GROUP, "zero").sku.capacity == 0
    assert estate.uniform_public_ips("zero") == {}
    assert all(len(ips) == 1 for ips in estate.uniform_public_ips("watch").values())
    intents = [r.scale_set.rsplit("/", 1)[-1] for r in estate.audit() if r.kind is RecordKind.INTENT]
    assert intents == ["zero"]


def test_scale_to_zero_disables_the_autoscale_setting_first_so_it_cannot_scale_back(estate: Estate) -> None:
    from azure.core.rest import HttpRequest

    from sim import AutoscaleRefused

    estate.create_set("web", tags={"remediation.mode": "scale-to-zero"})
    setting_id = f"{docs.PREFIX}/Microsoft.Insights/autoscalesettings/web-autoscale"
    setting = {
        "location": docs.LOCATION,
        "properties": {
            "enabled": True,
            "targetResourceUri": docs.set_id("web"),
            "profiles": [
                {"name": "default", "capacity": {"minimum": "0", "maximum": "5", "default": "0"}, "rules": []}
            ],
        },
    }
    put = estate.compute.send_request(
        HttpRequest("PUT", f"{setting_id}?api-version=2022-10-01", json=setting)
    )
    assert put.status_code in (200, 201)
    estate.sim.autoscale_to(docs.set_id("web"), 2)  # autoscale grows the set
    estate.sim.wait_idle(30)
    for event in estate.events():
        estate.deliver(event)
    estate.sim.wait_idle(30)

    assert estate.compute.virtual_machine_scale_sets.get(docs.GROUP, "web").sku.capacity == 0
    with pytest.raises(AutoscaleRefused, match="disabled"):
        estate.sim.autoscale_to(docs.set_id("web"), 2)
    intents = [r.action for r in estate.audit() if r.kind is RecordKind.INTENT]
    assert intents == ["disable-autoscale", "set-capacity-zero"]
    assert estate.successful("PATCH", "Microsoft.Insights/autoscalesettings") == [setting_id]


def test_an_event_delivered_late_for_a_remediated_set_costs_reads_and_no_write(estate: Estate) -> None:
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.scale("web", 2)
    for event in estate.events():
        estate.deliver(event)
    requests = len(estate.sim.requests())
    late = docs.write_event(docs.set_id("web"))
    late["eventTime"] = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()  # delayed in delivery

    estate.deliver(late)

    assert {r.method for r in estate.sim.requests()[requests:]} == {"GET"}, "level-triggered: no write"
    decisions = [
        r.reason for r in estate.audit() if r.event_id == late["id"] and r.kind is RecordKind.DECISION
    ]
    assert decisions[0].startswith("queued: a look at the set")
    assert any("2 instances" in reason or "no finding" in reason.lower() for reason in decisions[1:]), (
        decisions
    )


def test_a_detached_ip_whose_deletion_failed_is_deleted_by_the_next_reconcile(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATION_POLICY", json.dumps({"monitored_subscriptions": [docs.SUB]}))
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.scale("web", 1)
    (vm,) = estate.vms("web")
    (public_ip,) = estate.public_ips_of(vm)
    estate.sim.fail_next_operation(public_ip, code="InternalServerError", message="the deletion failed")
    for event in estate.events():
        try:
            estate.deliver(event)
        except ArmError:  # the verification saw the deletion fail already; Event Grid redelivers
            estate.sim.wait_idle(30)
            estate.deliver(event)
    estate.sim.wait_idle(30)
    assert estate.public_ips_of(vm) == [], "the IP is off the NIC: no exposure"

    estate.sweep(past_due=False)  # or any later event for the set
    estate.pump_rechecks()  # the looks the sweep queued
    estate.sim.wait_idle(30)

    assert estate.public_ip_count() == 0
    retried = [
        r for r in estate.audit() if r.kind is RecordKind.INTENT and "by an earlier handling" in r.reason
    ]
    assert len(retried) == 1 and retried[0].public_ip.lower() == public_ip.lower()


def test_an_event_whose_set_intake_cannot_read_in_time_is_handed_whole_to_the_queue(estate: Estate) -> None:
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.scale("web", 2)
    (event,) = [e for e in estate.events() if e["data"]["resourceUri"].lower().endswith("/web")][-1:]
    # Intake's read of the set meets a 503 with Retry-After (as a throttled or busy ARM answers).
    once = Faults(rate_503=1.0, max_faults=1, only_methods=frozenset({"GET"}), only_types=frozenset({SET}))
    estate.sim.set_faults(once)

    estate.take_in(event)  # answered: Event Grid is not kept waiting for a Retry-After

    refused = [r for r in estate.sim.requests() if r.status == 503]
    assert len(refused) == 1, "intake does not retry: the 503 is its only read of the set"
    (handed,) = [r for r in estate.audit() if r.event_id == event["id"] and r.kind is RecordKind.DECISION]
    assert "handed to the work queue" in handed.reason
    assert estate.pump_rechecks() == 2, "the event taken in by a worker, then the look it queued"
    assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))
    assert [r.kind for r in estate.audit() if r.event_id == event["id"]].count(RecordKind.RECEIVED) == 1
