"""Specification of the remediator under ARM's authorisation: with the custom role infra/ deploys
it writes what it must and is refused nothing; a refusal (403) is recorded with the missing action
and scope, not retried, and the set's next reconcile tries again.

Every product test runs under that role (tests/conftest.py fails a test in which the remediator
meets a 403 it did not expect); these are the ones about refusals."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

import arm_docs as docs
import pytest
from estate import Estate

from localazure.stack import REMEDIATOR_ROLE, ROLE_ACTIONS_FILE
from remediation.cli import main
from remediation.credentials import LoopbackCredential
from remediation.model import RecordKind

STRIP = {"remediation.mode": "strip"}
NIC = "Microsoft.Network/networkInterfaces"
JOIN_SUBNET = "Microsoft.Network/virtualNetworks/subnets/join/action"
REMEDIATOR = LoopbackCredential.APP_ID
pytestmark = pytest.mark.refusals


def hold_instead(estate: Estate, role: str) -> None:
    """The remediator holds ``role`` at the subscription instead of the deployed one."""
    estate.sim.revoke(estate.remediator_access)
    estate.sim.grant(REMEDIATOR, role, f"/subscriptions/{docs.SUB}")


def sweep(estate: Estate) -> None:
    """The timer sweep over the estate's subscription, then the looks it queued: every restricted
    set reconciled again."""
    estate.environment["REMEDIATION_POLICY"] = json.dumps({"monitored_subscriptions": [docs.SUB]})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REMEDIATION_POLICY", estate.environment["REMEDIATION_POLICY"])
        estate.sweep(past_due=False)
        estate.pump_rechecks()


def the_remediators(estate: Estate, after: int) -> Counter[tuple[str, int]]:
    """(method, status) of the remediator's write requests since ``after``."""
    return Counter(
        (r.method, r.status)
        for r in estate.sim.requests()[after:]
        if r.principal.lower() == REMEDIATOR.lower() and r.method in ("PUT", "PATCH", "POST", "DELETE")
    )


def test_a_role_missing_a_linked_action_is_refused_recorded_and_not_retried(
    estate: Estate, capsys: pytest.CaptureFixture[str]
) -> None:
    actions = json.loads(ROLE_ACTIONS_FILE.read_text(encoding="utf-8"))["actions"]
    lacking = estate.sim.define_role(
        f"{REMEDIATOR_ROLE} without subnet join", [a for a in actions if a != JOIN_SUBNET]
    )
    hold_instead(estate, lacking)
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 2)
    built = len(estate.sim.requests())

    (scale_out,) = estate.events()[-1:]
    estate.deliver(scale_out)  # returns normally: retrying cannot fix a role

    assert the_remediators(estate, built) == {("PUT", 403): 2}, "each NIC tried once, nothing else written"
    failed = [r for r in estate.audit() if r.kind is RecordKind.OUTCOME and r.result == "failed"]
    assert len(failed) == 2
    assert all("LinkedAuthorizationFailed" in r.error and JOIN_SUBNET in r.error for r in failed)
    assert all(docs.SUBNET.lower() in r.error.lower() for r in failed), "the linked scope is named"
    assert all(len(estate.public_ips_of(vm)) == 1 for vm in estate.vms("web"))
    assert main(["audit", "--outcome", "failed", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {r["record_id"] for r in shown} >= {r.record_id for r in failed}

    # The role is put right: the next reconcile (here the sweep) tries again, and succeeds.
    estate.sim.revoke(estate.sim.grant(REMEDIATOR, lacking, f"/subscriptions/{docs.SUB}"))
    estate.sim.grant(
        REMEDIATOR, estate.sim.define_role(REMEDIATOR_ROLE, actions), f"/subscriptions/{docs.SUB}"
    )
    sweep(estate)
    assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))


def test_a_reader_is_refused_every_write_and_each_refusal_is_recorded(estate: Estate) -> None:
    hold_instead(estate, "Reader")
    estate.create_set("zero", tags={"remediation.mode": "scale-to-zero"})
    estate.create_set("evict", tags={"remediation.mode": "evict"})
    estate.create_set("strip", tags=STRIP)
    for name in ("zero", "evict", "strip"):
        estate.scale(name, 1)
    built = len(estate.sim.requests())

    last_per_set = {event["data"]["resourceUri"].lower(): event for event in estate.events()}
    for scale_out in last_per_set.values():  # one reconcile per set
        estate.deliver(scale_out)

    writes = the_remediators(estate, built)
    assert writes and all(status == 403 for _, status in writes), writes
    assert writes == {("PATCH", 403): 1, ("DELETE", 403): 1, ("PUT", 403): 1}  # capacity, VM, NIC
    failed = [r for r in estate.audit() if r.kind is RecordKind.OUTCOME and r.result == "failed"]
    assert sorted(r.action for r in failed) == ["delete-vm", "detach-public-ip", "set-capacity-zero"]
    assert all("AuthorizationFailed" in r.error and "does not have authorization" in r.error for r in failed)


def test_with_the_role_per_resource_group_a_network_in_another_group_needs_the_join_role(
    estate: Estate,
) -> None:
    """roleAssignmentScope=resourceGroups: the role at the restricted group alone. A NIC PUT back
    re-asserts a subnet that lives in a network group, and ARM checks the join there; the
    deployment's networkResourceGroups gives that group the join role."""
    network_subnet = (
        f"/subscriptions/{docs.SUB}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/hub"
        "/subnets/default"
    )
    estate.sim.revoke(estate.remediator_access)
    estate.local.authorize(docs.SUB, resource_groups=(docs.GROUP,))
    body = docs.scale_set("web", 0, STRIP)
    profile = body["properties"]["virtualMachineProfile"]["networkProfile"]
    profile["networkInterfaceConfigurations"][0]["properties"]["ipConfigurations"][0]["properties"][
        "subnet"
    ] = {"id": network_subnet}
    for server_field in ("id", "name", "type"):
        body.pop(server_field)
    estate.compute.virtual_machine_scale_sets.begin_create_or_update(docs.GROUP, "web", body).result()
    estate.scale("web", 1)
    built = len(estate.sim.requests())
    (scale_out,) = estate.events()[-1:]

    estate.deliver(scale_out)

    assert the_remediators(estate, built) == {("PUT", 403): 1}
    (failed,) = [r for r in estate.audit() if r.kind is RecordKind.OUTCOME and r.result == "failed"]
    assert "LinkedAuthorizationFailed" in failed.error and JOIN_SUBNET in failed.error
    assert network_subnet.lower() in failed.error.lower()

    estate.local.authorize(docs.SUB, resource_groups=(docs.GROUP,), network_resource_groups=("rg-net",))
    sweep(estate)  # the set's next reconcile
    assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))


def test_a_read_the_role_lacks_is_recorded_once_and_the_event_is_not_redelivered(estate: Estate) -> None:
    actions = json.loads(ROLE_ACTIONS_FILE.read_text(encoding="utf-8"))["actions"]
    list_vms = "Microsoft.Compute/virtualMachines/read"
    hold_instead(estate, estate.sim.define_role("without VM read", [a for a in actions if a != list_vms]))
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 1)
    built = len(estate.sim.requests())
    (scale_out,) = estate.events()[-1:]

    estate.deliver(scale_out)  # returns normally: Event Grid would otherwise redeliver for a day

    refused = [r for r in estate.sim.requests()[built:] if r.status == 403]
    assert len(refused) == 1 and refused[0].method == "GET"
    (error,) = [r for r in estate.audit() if r.kind is RecordKind.ERROR]
    assert "AuthorizationFailed" in error.error and list_vms in error.error
    assert "not retried" in error.reason
    assert len(estate.public_ips_of(estate.vms("web")[0])) == 1


@dataclass(frozen=True)
class Write:
    """A kind of write, the role lacking its action, and an estate that makes the remediator try it."""

    missing: str
    mode: str
    method: str  # the refused request
    uniform: bool = False
    autoscale: bool = False


WRITES = [
    Write("Microsoft.Network/networkInterfaces/write", "strip", "PUT"),
    Write("Microsoft.Network/publicIPAddresses/delete", "strip", "DELETE"),
    Write("Microsoft.Compute/virtualMachines/delete", "evict", "DELETE"),
    Write("Microsoft.Compute/virtualMachineScaleSets/write", "scale-to-zero", "PATCH"),
    Write("Microsoft.Insights/autoscalesettings/write", "scale-to-zero", "PATCH", autoscale=True),
    Write("Microsoft.Compute/virtualMachineScaleSets/write", "strip", "PATCH", uniform=True),
    Write("Microsoft.Compute/virtualMachineScaleSets/manualUpgrade/action", "strip", "POST", uniform=True),
    Write(
        "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/delete", "evict", "DELETE", uniform=True
    ),
]


@pytest.mark.parametrize("write", WRITES, ids=lambda w: f"{w.missing.rsplit('/', 2)[-2]}-{w.mode}")
def test_each_kind_of_write_the_role_lacks_is_refused_once_and_recorded(estate: Estate, write: Write) -> None:
    actions = json.loads(ROLE_ACTIONS_FILE.read_text(encoding="utf-8"))["actions"]
    assert write.missing in actions
    lacking = estate.sim.define_role(f"without {write.missing}", [a for a in actions if a != write.missing])
    hold_instead(estate, lacking)
    tags = {"remediation.mode": write.mode}
    if write.uniform:
        estate.create_uniform_set("set", tags=tags)
    else:
        estate.create_set("set", tags=tags)
    if write.autoscale:
        estate.create_autoscale_setting("set")
    estate.scale("set", 1)
    built = len(estate.sim.requests())
    (scale_out,) = estate.events()[-1:]

    estate.deliver(scale_out)
    estate.sim.wait_idle(30)

    refusals = {k: n for k, n in the_remediators(estate, built).items() if k[1] == 403}
    assert refusals == {(write.method, 403): 1}, "the write tried once, not retried"
    (failed,) = [r for r in estate.audit() if r.kind is RecordKind.OUTCOME and r.result == "failed"]
    assert "AuthorizationFailed" in failed.error and write.missing in failed.error
