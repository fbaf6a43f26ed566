"""The custom role holds the linked action of every link the remediator's bodies can carry, and
no more: derived, not copied.

ARM authorises a PUT or PATCH for every resource id in its body (linked access). The remediator
PUTs a NIC back as it read it, and PATCHes a scale set's NIC configurations back whole, so the
role needs the action of every kind of link those documents can carry, except what the
planner's own body builders strip (public IPs and their prefixes). Derived here from three
sources, none kept in this file: ARM's JSON Schemas (../shared/specs: which writable properties
of a NIC and of a scale set NIC configuration are references), the planner's body builders (what
is left of a document carrying every one of them), and the simulator's linked access table
(sim/linked_access.py: the action each kind of reference needs, with its sources).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import arm_docs as docs
import pytest

from remediation.permissions import NIC_CONFIGURATION_LINKS, NIC_LINKS, required_permissions
from remediation.plan import model_without_public_ips, nic_without_public_ips
from remediation.resources import NetworkInterface, ScaleSet
from sim.actions import resource_type_of
from sim.linked_access import linked_action, linked_references

SCHEMAS = Path(__file__).resolve().parents[3] / "shared" / "specs" / "schemas"
NETWORK = f"{docs.PREFIX}/Microsoft.Network"

# An example id for each reference property ARM's schemas give a NIC or a NIC configuration. A
# schema that gains a reference property fails test_every_reference_property_is_known until it is
# named here, so the derivation below sees it.
REFERENCE_EXAMPLES = {
    "subnet": f"{NETWORK}/virtualNetworks/vnet/subnets/default",
    "networkSecurityGroup": f"{NETWORK}/networkSecurityGroups/nsg",
    "applicationSecurityGroups": f"{NETWORK}/applicationSecurityGroups/asg",
    "loadBalancerBackendAddressPools": f"{NETWORK}/loadBalancers/lb/backendAddressPools/pool",
    "loadBalancerInboundNatRules": f"{NETWORK}/loadBalancers/lb/inboundNatRules/ssh",
    "loadBalancerInboundNatPools": f"{NETWORK}/loadBalancers/lb/inboundNatPools/ssh",
    "applicationGatewayBackendAddressPools": f"{NETWORK}/applicationGateways/agw/backendAddressPools/pool",
    "gatewayLoadBalancer": f"{NETWORK}/loadBalancers/glb/frontendIPConfigurations/front",
    "virtualNetworkTaps": f"{NETWORK}/virtualNetworkTaps/tap",
    "publicIPAddress": f"{NETWORK}/publicIPAddresses/pip",
    "publicIPPrefix": f"{NETWORK}/publicIPPrefixes/prefix",
    "privateLinkService": f"{NETWORK}/privateLinkServices/pls",
}
# Properties whose value is the document's own child, or nested settings: not links.
NOT_LINKS = frozenset(
    {"ipConfigurations", "tapConfigurations", "dnsSettings", "ipTags", "publicIPAddressConfiguration"}
)


def definitions(schema: str) -> dict[str, Any]:
    document = json.loads((SCHEMAS / f"{schema}.json").read_text(encoding="utf-8"))
    return dict(document.get("$defs") or document["definitions"])


def reference_properties(schema: str, definition: str) -> set[str]:
    """The writable properties of ``definition`` whose value is (a list of) a resource reference."""
    defs = definitions(schema)
    found = set()
    for name, spec in defs[definition]["properties"].items():
        target = spec.get("$ref") or spec.get("items", {}).get("$ref")
        if spec.get("readOnly") or not target or name in NOT_LINKS:
            continue
        if has_id(defs, target.rsplit("/", 1)[-1]):
            found.add(name)
    return found


def has_id(defs: dict[str, Any], definition: str) -> bool:
    """Whether the definition has an ``id`` of its own or through its allOf bases (a resource)."""
    spec = defs[definition]
    bases = (base["$ref"].rsplit("/", 1)[-1] for base in spec.get("allOf", []) if "$ref" in base)
    return "id" in spec.get("properties", {}) or any(has_id(defs, base) for base in bases)


NIC_PROPERTIES = ("NetworkInterface", "NetworkInterfacePropertiesFormat")
NIC_IP_CONFIGURATION = ("NetworkInterface", "NetworkInterfaceIPConfigurationPropertiesFormat")
SET_NIC_CONFIGURATION = ("VirtualMachineScaleSet", "VirtualMachineScaleSetNetworkConfigurationProperties")
SET_IP_CONFIGURATION = ("VirtualMachineScaleSet", "VirtualMachineScaleSetIPConfigurationProperties")
SET_PUBLIC_IP = ("VirtualMachineScaleSet", "VirtualMachineScaleSetPublicIPAddressConfigurationProperties")


def carrying(schema_definition: tuple[str, str]) -> dict[str, Any]:
    """Properties holding one reference of every kind the schema gives this definition."""
    properties: dict[str, Any] = {}
    defs = definitions(schema_definition[0])
    for name in reference_properties(*schema_definition):
        spec = defs[schema_definition[1]]["properties"][name]
        reference = {"id": REFERENCE_EXAMPLES[name]}
        properties[name] = [reference] if spec.get("type") == "array" or "items" in spec else reference
    return properties


@pytest.mark.parametrize(
    "schema_definition",
    [NIC_PROPERTIES, NIC_IP_CONFIGURATION, SET_NIC_CONFIGURATION, SET_IP_CONFIGURATION, SET_PUBLIC_IP],
)
def test_every_reference_property_is_known(schema_definition: tuple[str, str]) -> None:
    assert reference_properties(*schema_definition) <= set(REFERENCE_EXAMPLES)


# Reference kinds the schemas allow that a scale set's NIC cannot carry, with the reason.
NEVER_ON_SCALE_SET_NICS = {
    "privateLinkService": "NRP creates and owns a private link service's NICs; they attach to no VM",
}


def test_every_kind_of_reference_has_its_linked_action() -> None:
    """A reference kind the simulator's table lacks would be dropped silently from the derivation
    below (and the role would lack its action in Azure): every one must have a row."""
    schemas = (
        NIC_PROPERTIES,
        NIC_IP_CONFIGURATION,
        SET_NIC_CONFIGURATION,
        SET_IP_CONFIGURATION,
        SET_PUBLIC_IP,
    )
    kinds = set().union(*(reference_properties(*schema) for schema in schemas))
    unknown = {
        name for name in kinds if linked_action(resource_type_of(REFERENCE_EXAMPLES[name]) or "") is None
    }
    assert unknown == set(NEVER_ON_SCALE_SET_NICS)


def linked_actions(body: dict[str, Any], own_id: str) -> set[str]:
    return {action for action, _ in linked_references(body, own_id)}


def test_a_nic_put_back_needs_exactly_the_nic_links() -> None:
    nic_id = docs.nic_id("web1234Nic-0a1b2c3d")
    ip_configuration: dict[str, Any] = {"name": "ipconfig1", "id": f"{nic_id}/ipConfigurations/ipconfig1"}
    ip_configuration["properties"] = carrying(NIC_IP_CONFIGURATION)
    document = {
        "id": nic_id,
        "properties": {**carrying(NIC_PROPERTIES), "ipConfigurations": [ip_configuration]},
    }

    sent = nic_without_public_ips(NetworkInterface.from_arm(document))

    assert linked_actions(sent, nic_id) == set(NIC_LINKS)
    assert set(NIC_LINKS) <= required_permissions()


def test_a_model_patch_needs_exactly_the_nic_configuration_links() -> None:
    ip_configuration: dict[str, Any] = {"name": "ipconfig1", "properties": carrying(SET_IP_CONFIGURATION)}
    ip_configuration["properties"]["publicIPAddressConfiguration"] = {
        "name": "pip",
        "properties": carrying(SET_PUBLIC_IP),
    }
    nic_configuration = {
        "name": "nic",
        "properties": {**carrying(SET_NIC_CONFIGURATION), "ipConfigurations": [ip_configuration]},
    }
    document = docs.uniform_set("uni")
    document["properties"]["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"] = [
        nic_configuration
    ]

    sent = model_without_public_ips(ScaleSet.from_arm(document))

    assert linked_actions(sent, document["id"]) == set(NIC_CONFIGURATION_LINKS)
    assert set(NIC_CONFIGURATION_LINKS) <= required_permissions()


def test_the_role_may_never_attach_a_public_ip() -> None:
    attach = {
        "Microsoft.Network/publicIPAddresses/join/action",
        "Microsoft.Network/publicIPPrefixes/join/action",
    }
    assert not attach & required_permissions()
