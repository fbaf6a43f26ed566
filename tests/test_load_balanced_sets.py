"""Specification of the strip on scale sets behind a load balancer, under the custom role infra/
deploys (tests/conftest.py fails a test here if the remediator meets any 403):

- a Uniform set in a backend pool with an SSH NAT pool on 50000-50119: the model loses its public
  IP configuration and keeps its pool and NAT pool; the instances keep their pool membership and
  their NAT ports;
- a Flexible set whose NICs carry an application security group and a backend pool: each NIC is
  put back with both, minus its public IP;
- the role without one linked action: one refusal per write, recorded with that action and the
  linked scope, nothing else written, nothing retried.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import arm_docs as docs
import pytest
from estate import Estate

from localazure.stack import REMEDIATOR_ROLE, ROLE_ACTIONS_FILE
from remediation.credentials import LoopbackCredential
from remediation.model import RecordKind

STRIP = {"remediation.mode": "strip"}
LB = docs.lb_id("lb")
POOL = f"{LB}/backendAddressPools/pool"
NAT_POOL = f"{LB}/inboundNatPools/ssh"
JOIN_POOL = "Microsoft.Network/loadBalancers/backendAddressPools/join/action"
JOIN_NAT_POOL = "Microsoft.Network/loadBalancers/inboundNatPools/join/action"
REMEDIATOR = LoopbackCredential.APP_ID


@pytest.fixture(params=["sent", "merged"])
def patch_reading(request: pytest.FixtureRequest, estate: Estate) -> Iterator[str]:
    """Whether ARM checks a PATCH's links on what it sends or on the merged resource is not
    documented: the simulator switches, and the product must hold under both."""
    estate.sim.linked_access_on_patch = request.param
    yield str(request.param)
    estate.sim.linked_access_on_patch = "sent"


def memberships(lb: dict[str, Any]) -> dict[str, Any]:
    """Who is in the pool, and which NAT rule (port) each instance has."""
    [pool] = lb["properties"]["backendAddressPools"]
    return {
        "pool": sorted(c["id"].lower() for c in pool["properties"].get("backendIPConfigurations") or []),
        "nat": sorted(
            (
                r["name"],
                r["properties"]["frontendPort"],
                r["properties"]["backendPort"],
                r["properties"]["backendIPConfiguration"]["id"].lower(),
            )
            for r in lb["properties"]["inboundNatRules"]
        ),
    }


def remediator_writes(estate: Estate, after: int) -> Counter[tuple[str, str, int]]:
    return Counter(
        (r.method, r.resource_type, r.status)
        for r in estate.sim.requests()[after:]
        if r.principal.lower() == REMEDIATOR.lower() and r.method in ("PUT", "PATCH", "POST", "DELETE")
    )


def model_ipconfig(estate: Estate, name: str) -> dict[str, Any]:
    model = estate.compute.virtual_machine_scale_sets.get(docs.GROUP, name).as_dict()
    network = model["properties"]["virtualMachineProfile"]["networkProfile"]
    return dict(
        network["networkInterfaceConfigurations"][0]["properties"]["ipConfigurations"][0]["properties"]
    )


def test_strip_on_a_uniform_set_behind_a_load_balancer_keeps_its_pool_and_nat_ports(
    estate: Estate, patch_reading: str
) -> None:
    estate.create_load_balancer()
    links = {"loadBalancerBackendAddressPools": [POOL], "loadBalancerInboundNatPools": [NAT_POOL]}
    estate.create_uniform_set("uni", tags=STRIP, links=links)
    estate.scale("uni", 2)
    before = estate.load_balancer()
    assert len(memberships(before)["pool"]) == 2 and [n[1] for n in memberships(before)["nat"]] == [
        50000,
        50001,
    ]
    built = len(estate.sim.requests())

    for event in estate.events():
        estate.deliver(event)
    estate.sim.wait_idle(30)

    assert estate.uniform_public_ips("uni") == {"0": [], "1": []}
    after = estate.load_balancer()
    assert after["etag"] == before["etag"], "nothing wrote to the load balancer"
    assert memberships(after) == memberships(before)
    ipconfig = model_ipconfig(estate, "uni")
    assert "publicIPAddressConfiguration" not in ipconfig
    assert [p["id"] for p in ipconfig["loadBalancerBackendAddressPools"]] == [POOL]
    assert [p["id"] for p in ipconfig["loadBalancerInboundNatPools"]] == [NAT_POOL]
    writes = remediator_writes(estate, built)
    assert writes == {
        ("PATCH", "Microsoft.Compute/virtualMachineScaleSets", 200): 1,
        ("POST", "Microsoft.Compute/virtualMachineScaleSets", 202): 1,
    }, "the model's NICs, then the upgrade of the instances"


def test_strip_on_a_flexible_set_with_a_group_and_a_pool_puts_each_nic_back_with_both(
    estate: Estate, patch_reading: str
) -> None:
    estate.create_load_balancer()
    estate.create_application_security_group("web")
    links = {"loadBalancerBackendAddressPools": [POOL], "applicationSecurityGroups": [docs.asg_id("web")]}
    estate.create_set("web", tags=STRIP, links=links)
    estate.scale("web", 2)
    before = estate.load_balancer()
    assert len(memberships(before)["pool"]) == 2
    built = len(estate.sim.requests())

    for event in estate.events():
        estate.deliver(event)
    estate.sim.wait_idle(30)

    vms = estate.vms("web")
    assert len(vms) == 2 and all(estate.public_ips_of(vm) == [] for vm in vms)
    for vm in vms:
        nic_name = vm["properties"]["networkProfile"]["networkInterfaces"][0]["id"].rsplit("/", 1)[-1]
        nic = estate.network.network_interfaces.get(docs.GROUP, nic_name).as_dict()
        [config] = nic["properties"]["ipConfigurations"]
        assert [g["id"] for g in config["properties"]["applicationSecurityGroups"]] == [docs.asg_id("web")]
        assert [p["id"] for p in config["properties"]["loadBalancerBackendAddressPools"]] == [POOL]
    after = estate.load_balancer()
    assert after["etag"] == before["etag"] and memberships(after) == memberships(before)
    assert estate.public_ip_count() == 1, "only the load balancer's frontend IP is left"
    writes = remediator_writes(estate, built)
    assert writes == {
        ("PUT", "Microsoft.Network/networkInterfaces", 200): 2,
        ("DELETE", "Microsoft.Network/publicIPAddresses", 202): 2,
    }


def _role_without(estate: Estate, action: str) -> None:
    actions = json.loads(ROLE_ACTIONS_FILE.read_text(encoding="utf-8"))["actions"]
    lacking = estate.sim.define_role(
        f"{REMEDIATOR_ROLE} without {action}", [a for a in actions if a != action]
    )
    estate.sim.revoke(estate.remediator_access)
    estate.sim.grant(REMEDIATOR, lacking, f"/subscriptions/{docs.SUB}")


def test_scale_to_zero_under_the_role_on_a_load_balanced_set(estate: Estate, patch_reading: str) -> None:
    estate.create_load_balancer()
    links = {"loadBalancerBackendAddressPools": [POOL], "loadBalancerInboundNatPools": [NAT_POOL]}
    estate.create_uniform_set("uni", tags={"remediation.mode": "scale-to-zero"}, links=links)
    estate.scale("uni", 2)
    built = len(estate.sim.requests())

    for event in estate.events():
        estate.deliver(event)
    estate.sim.wait_idle(30)

    assert estate.uniform_public_ips("uni") == {}
    assert remediator_writes(estate, built) == {
        ("PATCH", "Microsoft.Compute/virtualMachineScaleSets", 200): 1
    }


@pytest.mark.refusals
@pytest.mark.parametrize(
    ("mode", "missing", "linked", "refused_write"),
    [
        ("flexible", JOIN_POOL, POOL, ("PUT", "Microsoft.Network/networkInterfaces", 403)),
        ("uniform", JOIN_NAT_POOL, NAT_POOL, ("PATCH", "Microsoft.Compute/virtualMachineScaleSets", 403)),
    ],
)
def test_a_role_without_a_load_balancer_join_is_refused_once_per_write_and_recorded(
    estate: Estate, mode: str, missing: str, linked: str, refused_write: tuple[str, str, int]
) -> None:
    estate.create_load_balancer()
    if mode == "flexible":
        estate.create_set("web", tags=STRIP, links={"loadBalancerBackendAddressPools": [POOL]})
        estate.scale("web", 2)
        expected = 2  # one NIC PUT each
    else:
        links = {"loadBalancerBackendAddressPools": [POOL], "loadBalancerInboundNatPools": [NAT_POOL]}
        estate.create_uniform_set("web", tags=STRIP, links=links)
        estate.scale("web", 2)
        expected = 1  # the model PATCH
    _role_without(estate, missing)
    built = len(estate.sim.requests())
    before = estate.load_balancer()

    (scale_out,) = estate.events()[-1:]
    estate.deliver(scale_out)  # one reconcile; it returns normally: retrying cannot fix a role
    estate.sim.wait_idle(30)

    assert remediator_writes(estate, built) == {refused_write: expected}, (
        "each write tried once, nothing else"
    )
    failed = [r for r in estate.audit() if r.kind is RecordKind.OUTCOME and r.result == "failed"]
    assert len(failed) == expected
    for record in failed:
        assert "LinkedAuthorizationFailed" in record.error and missing in record.error
        assert linked.lower() in record.error.lower(), "the linked scope is named"
    assert estate.load_balancer()["etag"] == before["etag"]
