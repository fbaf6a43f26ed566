"""ARM wire documents for tests, shaped like the REST API specs' examples (shared/fixtures)."""

from __future__ import annotations

from typing import Any

SUB = "6a2e1c9d-6f3b-4f57-9d3e-2b1f4c8e7a10"
GROUP = "rg-app"
LOCATION = "westeurope"
PREFIX = f"/subscriptions/{SUB}/resourceGroups/{GROUP}/providers"
SUBNET = f"{PREFIX}/Microsoft.Network/virtualNetworks/vnet/subnets/default"


def set_id(name: str) -> str:
    return f"{PREFIX}/Microsoft.Compute/virtualMachineScaleSets/{name}"


def nic_id(name: str) -> str:
    return f"{PREFIX}/Microsoft.Network/networkInterfaces/{name}"


def public_ip_id(name: str) -> str:
    return f"{PREFIX}/Microsoft.Network/publicIPAddresses/{name}"


def vm_id(name: str) -> str:
    return f"{PREFIX}/Microsoft.Compute/virtualMachines/{name}"


def nic_configuration(public_ip: bool = True) -> dict[str, Any]:
    ip_config: dict[str, Any] = {
        "name": "ipconfig1",
        "properties": {"primary": True, "subnet": {"id": SUBNET}},
    }
    if public_ip:
        ip_config["properties"]["publicIPAddressConfiguration"] = {
            "name": "publicip",
            "sku": {"name": "Standard", "tier": "Regional"},
            "properties": {"idleTimeoutInMinutes": 15},
        }
    return {"name": "nic", "properties": {"primary": True, "ipConfigurations": [ip_config]}}


def lb_id(name: str) -> str:
    return f"{PREFIX}/Microsoft.Network/loadBalancers/{name}"


def asg_id(name: str) -> str:
    return f"{PREFIX}/Microsoft.Network/applicationSecurityGroups/{name}"


def frontend_public_ip() -> dict[str, Any]:
    return {
        "location": LOCATION,
        "sku": {"name": "Standard"},
        "properties": {"publicIPAllocationMethod": "Static"},
    }


def load_balancer(name: str, public_ip_id: str) -> dict[str, Any]:
    """A Standard load balancer with pool `pool`, an HTTP rule and probe, and an SSH NAT pool
    50000-50119 -> 22 (the bodies of shared/fixtures/recorded-arm/loadbalancerclient.yaml, with children)."""
    lb = lb_id(name)
    front = {"id": f"{lb}/frontendIPConfigurations/front"}
    return {
        "location": LOCATION,
        "sku": {"name": "Standard"},
        "properties": {
            "frontendIPConfigurations": [
                {"name": "front", "properties": {"publicIPAddress": {"id": public_ip_id}}}
            ],
            "backendAddressPools": [{"name": "pool"}],
            "probes": [
                {"name": "http", "properties": {"protocol": "Tcp", "port": 80, "intervalInSeconds": 15}}
            ],
            "loadBalancingRules": [
                {
                    "name": "http",
                    "properties": {
                        "frontendIPConfiguration": front,
                        "backendAddressPool": {"id": f"{lb}/backendAddressPools/pool"},
                        "probe": {"id": f"{lb}/probes/http"},
                        "protocol": "Tcp",
                        "frontendPort": 80,
                        "backendPort": 80,
                    },
                }
            ],
            "inboundNatPools": [
                {
                    "name": "ssh",
                    "properties": {
                        "frontendIPConfiguration": front,
                        "protocol": "Tcp",
                        "frontendPortRangeStart": 50000,
                        "frontendPortRangeEnd": 50119,
                        "backendPort": 22,
                    },
                }
            ],
        },
    }


def with_links(body: dict[str, Any], links: dict[str, list[str]]) -> dict[str, Any]:
    """The set's model with its (one) ipConfiguration also referencing ``links`` (property -> ids)."""
    config = body["properties"]["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"][
        0
    ]
    ipconfig = config["properties"]["ipConfigurations"][0]["properties"]
    for prop, targets in links.items():
        ipconfig[prop] = [{"id": target} for target in targets]
    return body


def scale_set(
    name: str, capacity: int = 0, tags: dict[str, str] | None = None, prefix: str = "web"
) -> dict[str, Any]:
    """A Flexible set with a public IP per instance, as `az vmss create --public-ip-per-vm` makes it."""
    return {
        "id": set_id(name),
        "name": name,
        "type": "Microsoft.Compute/virtualMachineScaleSets",
        "location": LOCATION,
        "tags": tags or {},
        "sku": {"name": "Standard_D2s_v5", "tier": "Standard", "capacity": capacity},
        "properties": {
            "orchestrationMode": "Flexible",
            "platformFaultDomainCount": 1,
            "virtualMachineProfile": {
                "osProfile": {"computerNamePrefix": prefix, "adminUsername": "azureuser"},
                "networkProfile": {
                    "networkApiVersion": "2020-11-01",
                    "networkInterfaceConfigurations": [nic_configuration()],
                },
            },
        },
    }


def flex_instance(set_name: str, suffix: str, nic_name: str, prefix: str = "web") -> dict[str, Any]:
    """A VM the set created itself: `{set}_{8 hex}`, NIC from the profile, computerName from the prefix."""
    name = f"{set_name}_{suffix}"
    return {
        "id": vm_id(name),
        "name": name,
        "type": "Microsoft.Compute/virtualMachines",
        "location": LOCATION,
        "properties": {
            "virtualMachineScaleSet": {"id": set_id(set_name)},
            "osProfile": {"computerName": f"{prefix}a1b2c3"},
            "networkProfile": {
                "networkApiVersion": "2020-11-01",
                "networkInterfaceConfigurations": [nic_configuration()],
                "networkInterfaces": [{"id": nic_id(nic_name), "properties": {"primary": True}}],
            },
            "timeCreated": "2026-11-21T10:00:00+00:00",
            "provisioningState": "Succeeded",
        },
    }


def hand_added_vm(set_name: str, name: str, nic_name: str) -> dict[str, Any]:
    """A VM a person attached to the set: its own name, a NIC named after it, its own computer name."""
    return {
        "id": vm_id(name),
        "name": name,
        "type": "Microsoft.Compute/virtualMachines",
        "location": LOCATION,
        "properties": {
            "virtualMachineScaleSet": {"id": set_id(set_name)},
            "osProfile": {"computerName": name},
            "networkProfile": {
                "networkInterfaces": [{"id": nic_id(nic_name), "properties": {"primary": True}}]
            },
            "provisioningState": "Succeeded",
        },
    }


def nic(name: str, vm: str | None, public_ip: str | None = None, etag: str = 'W/"1"') -> dict[str, Any]:
    ip_properties: dict[str, Any] = {
        "primary": True,
        "privateIPAllocationMethod": "Dynamic",
        "subnet": {"id": SUBNET},
    }
    if public_ip:
        ip_properties["publicIPAddress"] = {"id": public_ip_id(public_ip)}
    doc: dict[str, Any] = {
        "id": nic_id(name),
        "name": name,
        "type": "Microsoft.Network/networkInterfaces",
        "location": LOCATION,
        "etag": etag,
        "properties": {
            "ipConfigurations": [
                {
                    "id": f"{nic_id(name)}/ipConfigurations/ipconfig1",
                    "name": "ipconfig1",
                    "properties": ip_properties,
                }
            ],
        },
    }
    if vm:
        doc["properties"]["virtualMachine"] = {"id": vm_id(vm)}
    return doc


def uniform_set(
    name: str, capacity: int = 0, tags: dict[str, str] | None = None, upgrade: str = "Manual"
) -> dict[str, Any]:
    """A Uniform set with a public IP per instance in its model."""
    doc = scale_set(name, capacity, tags)
    doc["properties"]["orchestrationMode"] = "Uniform"
    doc["properties"]["upgradePolicy"] = {"mode": upgrade}
    doc["etag"] = 'W/"set-1"'
    return doc


def uniform_instance(set_name: str, instance_id: str) -> dict[str, Any]:
    vm = f"{set_id(set_name)}/virtualMachines/{instance_id}"
    return {
        "id": vm,
        "name": f"{set_name}_{instance_id}",
        "instanceId": instance_id,
        "type": "Microsoft.Compute/virtualMachineScaleSets/virtualMachines",
        "location": LOCATION,
        "properties": {
            "osProfile": {"computerName": f"web{int(instance_id):06x}"},
            "networkProfile": {"networkInterfaces": [{"id": f"{vm}/networkInterfaces/nic"}]},
            "provisioningState": "Succeeded",
        },
    }


def uniform_nic(set_name: str, instance_id: str, public_ip: bool) -> dict[str, Any]:
    vm = f"{set_id(set_name)}/virtualMachines/{instance_id}"
    nic_id_ = f"{vm}/networkInterfaces/nic"
    ip_properties: dict[str, Any] = {"primary": True, "subnet": {"id": SUBNET}}
    if public_ip:
        ip_properties["publicIPAddress"] = {
            "id": f"{nic_id_}/ipConfigurations/ipconfig1/publicIPAddresses/publicip"
        }
    return {
        "id": nic_id_,
        "name": "nic",
        "etag": 'W/"1"',
        "properties": {
            "virtualMachine": {"id": vm},
            "ipConfigurations": [
                {
                    "name": "ipconfig1",
                    "id": f"{nic_id_}/ipConfigurations/ipconfig1",
                    "properties": ip_properties,
                }
            ],
        },
    }


_WRITE_OPERATIONS = {
    "virtualmachinescalesets": "Microsoft.Compute/virtualMachineScaleSets/write",
    "virtualmachines": "Microsoft.Compute/virtualMachines/write",
    "networkinterfaces": "Microsoft.Network/networkInterfaces/write",
    "publicipaddresses": "Microsoft.Network/publicIPAddresses/write",
}


def write_event(resource_id: str, event_id: str = "", correlation_id: str = "") -> dict[str, Any]:
    """A ResourceWriteSuccess event for ``resource_id``, in Event Grid schema, as ARM sends it."""
    import uuid
    from datetime import UTC, datetime

    return {
        "id": event_id or str(uuid.uuid4()),
        "topic": f"/subscriptions/{SUB}",
        "subject": resource_id,
        "eventType": "Microsoft.Resources.ResourceWriteSuccess",
        "eventTime": datetime.now(UTC).isoformat(),
        "dataVersion": "2",
        "metadataVersion": "1",
        "data": {
            "operationName": _WRITE_OPERATIONS[resource_id.rstrip("/").split("/")[-2].lower()],
            "resourceUri": resource_id,
            "status": "Succeeded",
            "subscriptionId": SUB,
            "correlationId": correlation_id or str(uuid.uuid4()),
            "claims": {},
        },
    }
