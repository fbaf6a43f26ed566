"""ARM's resources as the remediator reads them: scale sets, VMs, NICs, public IPs and autoscale
settings, each a frozen dataclass built from ARM's wire format (the JSON the REST API returns) by
its ``from_arm`` constructor. The ARM gateway hands these out instead of SDK models, so an SDK
upgrade that moves model fields (as azure-mgmt-compute 38 and azure-mgmt-network 31 did) touches
nothing here, and the what-if planner reads exported ARM JSON with no SDK at all. Resource ids
compare case-insensitively, as ARM does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from remediation.resource_ids import UNIFORM_VM_TYPE, ResourceId


def _props(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    properties = doc.get("properties")
    return properties if isinstance(properties, Mapping) else {}


def _optional_id(value: object) -> ResourceId | None:
    if isinstance(value, Mapping):
        value = value.get("id")
    if not value:
        return None
    return ResourceId.parse(value)


def _tags(doc: Mapping[str, Any]) -> dict[str, str]:
    tags = doc.get("tags")
    if not isinstance(tags, Mapping):
        return {}
    return {str(k): str(v) for k, v in tags.items()}


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


NicConfigurationNames = tuple[tuple[str, tuple[str, ...]], ...]


def nic_configuration_names(configurations: object) -> NicConfigurationNames:
    """Each NIC configuration's name with its ipConfigurations' names, lower case and sorted: what
    a VM the set made from its profile shares with that profile, whatever else differs."""
    names: list[tuple[str, tuple[str, ...]]] = []
    for configuration in configurations if isinstance(configurations, list) else []:
        if not isinstance(configuration, Mapping):
            continue
        ip_configurations = _props(configuration).get("ipConfigurations") or []
        ip_names = sorted(
            str(ip.get("name") or "").lower() for ip in ip_configurations if isinstance(ip, Mapping)
        )
        names.append((str(configuration.get("name") or "").lower(), tuple(ip_names)))
    return tuple(sorted(names))


def tag_value(tags: Mapping[str, str], key: str) -> str | None:
    """Tag keys are case-insensitive in Azure."""
    wanted = key.lower()
    for name, value in tags.items():
        if name.lower() == wanted:
            return value
    return None


@dataclass(frozen=True)
class ScaleSet:
    id: ResourceId
    location: str
    orchestration_mode: str
    capacity: int
    computer_name_prefix: str
    tags: Mapping[str, str]
    etag: str
    provisioning_state: str
    upgrade_mode: str  # Manual, Automatic or Rolling (how a model change reaches instances)
    # The wire document as read: a capacity change is a PUT of the whole resource.
    raw: Mapping[str, Any] = field(compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.id.name

    @property
    def is_flexible(self) -> bool:
        return self.orchestration_mode.lower() == "flexible"

    @classmethod
    def from_arm(cls, doc: Mapping[str, Any]) -> ScaleSet:
        props = _props(doc)
        sku = doc.get("sku") if isinstance(doc.get("sku"), Mapping) else {}
        profile = props.get("virtualMachineProfile") or {}
        os_profile = profile.get("osProfile") or {} if isinstance(profile, Mapping) else {}
        return cls(
            id=ResourceId.parse(doc.get("id")),
            location=str(doc.get("location", "")),
            orchestration_mode=str(props.get("orchestrationMode") or "Uniform"),
            capacity=int(sku.get("capacity") or 0) if isinstance(sku, Mapping) else 0,
            computer_name_prefix=str(os_profile.get("computerNamePrefix") or ""),
            tags=_tags(doc),
            etag=str(doc.get("etag") or ""),
            provisioning_state=str(props.get("provisioningState") or ""),
            upgrade_mode=str((props.get("upgradePolicy") or {}).get("mode") or "Manual"),
            raw=doc,
        )

    @property
    def nic_configurations(self) -> list[Any]:
        """The NIC configurations of the set's model, as read (wire JSON)."""
        profile = _props(self.raw).get("virtualMachineProfile") or {}
        return list((profile.get("networkProfile") or {}).get("networkInterfaceConfigurations") or [])

    @property
    def nic_configuration_names(self) -> NicConfigurationNames:
        return nic_configuration_names(self.nic_configurations)

    @property
    def model_has_public_ip(self) -> bool:
        """Whether the set's model gives each instance a public IP."""
        return any(
            _props(ip).get("publicIPAddressConfiguration")
            for nic in self.nic_configurations
            for ip in _props(nic).get("ipConfigurations") or []
        )


@dataclass(frozen=True)
class VirtualMachine:
    id: ResourceId
    scale_set_id: ResourceId | None
    nic_ids: tuple[ResourceId, ...]
    computer_name: str
    has_nic_configurations: bool
    network_api_version: str
    time_created: datetime | None
    provisioning_state: str
    tags: Mapping[str, str]
    # The names of the NIC configurations Compute made its NICs from (Flexible instances only).
    nic_configuration_names: NicConfigurationNames = ()

    @property
    def name(self) -> str:
        return self.id.name

    @property
    def is_uniform_instance(self) -> bool:
        return self.id.is_type(UNIFORM_VM_TYPE)

    @classmethod
    def from_arm(cls, doc: Mapping[str, Any]) -> VirtualMachine:
        props = _props(doc)
        network = props.get("networkProfile") or {}
        os_profile = props.get("osProfile") or {}
        nic_refs = network.get("networkInterfaces") or []
        vm_id = ResourceId.parse(doc.get("id"))
        # A Uniform set's instance lives under its set and names it only through its id.
        owner = _optional_id(props.get("virtualMachineScaleSet")) or (
            vm_id.parent if vm_id.is_type(UNIFORM_VM_TYPE) else None
        )
        return cls(
            id=vm_id,
            scale_set_id=owner,
            nic_ids=tuple(ResourceId.parse(ref.get("id")) for ref in nic_refs if isinstance(ref, Mapping)),
            computer_name=str(os_profile.get("computerName") or ""),
            has_nic_configurations=bool(network.get("networkInterfaceConfigurations")),
            network_api_version=str(network.get("networkApiVersion") or ""),
            time_created=_time(props.get("timeCreated")),
            provisioning_state=str(props.get("provisioningState") or ""),
            tags=_tags(doc),
            nic_configuration_names=nic_configuration_names(network.get("networkInterfaceConfigurations")),
        )


@dataclass(frozen=True)
class IpConfiguration:
    name: str
    public_ip_id: ResourceId | None


@dataclass(frozen=True)
class NetworkInterface:
    id: ResourceId
    vm_id: ResourceId | None
    ip_configurations: tuple[IpConfiguration, ...]
    tags: Mapping[str, str]
    etag: str
    provisioning_state: str
    # The wire document as read: a NIC update is a PUT of the whole resource.
    raw: Mapping[str, Any] = field(compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.id.name

    @property
    def public_ip_ids(self) -> tuple[ResourceId, ...]:
        return tuple(c.public_ip_id for c in self.ip_configurations if c.public_ip_id is not None)

    @classmethod
    def from_arm(cls, doc: Mapping[str, Any]) -> NetworkInterface:
        props = _props(doc)
        configurations = []
        for config in props.get("ipConfigurations") or []:
            if isinstance(config, Mapping):
                config_props = _props(config)
                configurations.append(
                    IpConfiguration(
                        name=str(config.get("name") or ""),
                        public_ip_id=_optional_id(config_props.get("publicIPAddress")),
                    )
                )
        return cls(
            id=ResourceId.parse(doc.get("id")),
            vm_id=_optional_id(props.get("virtualMachine")),
            ip_configurations=tuple(configurations),
            tags=_tags(doc),
            etag=str(doc.get("etag") or ""),
            provisioning_state=str(props.get("provisioningState") or ""),
            raw=doc,
        )


@dataclass(frozen=True)
class PublicIp:
    id: ResourceId
    ip_configuration_id: ResourceId | None
    ip_address: str
    provisioning_state: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    nat_gateway_id: ResourceId | None = None  # a NAT gateway holds it (no ipConfiguration then)

    @classmethod
    def from_arm(cls, doc: Mapping[str, Any]) -> PublicIp:
        props = _props(doc)
        return cls(
            id=ResourceId.parse(doc.get("id")),
            ip_configuration_id=_optional_id(props.get("ipConfiguration")),
            ip_address=str(props.get("ipAddress") or ""),
            provisioning_state=str(props.get("provisioningState") or ""),
            tags=_tags(doc),
            nat_gateway_id=_optional_id(props.get("natGateway")),
        )

    @property
    def in_use(self) -> bool:
        """Held by a NIC's ipConfiguration or a NAT gateway: not free to delete."""
        return self.ip_configuration_id is not None or self.nat_gateway_id is not None


@dataclass(frozen=True)
class AutoscaleSetting:
    """A Microsoft.Insights autoscale setting, and the resource it scales."""

    id: ResourceId
    enabled: bool
    target: ResourceId | None
    raw: Mapping[str, Any] = field(compare=False, repr=False)
    minimum: int = 0  # the highest of its profiles' minimum capacities: what it keeps at least

    @classmethod
    def from_arm(cls, doc: Mapping[str, Any]) -> AutoscaleSetting:
        props = _props(doc)
        minimums = [
            int(str(capacity.get("minimum")).strip())
            for profile in props.get("profiles") or []
            if isinstance(profile, Mapping)
            and isinstance(capacity := profile.get("capacity"), Mapping)
            and str(capacity.get("minimum", "")).strip().isdigit()  # ARM sends the counts as strings
        ]
        return cls(
            id=ResourceId.parse(doc.get("id")),
            enabled=bool(props.get("enabled")),
            target=_optional_id(props.get("targetResourceUri")),
            raw=doc,
            minimum=max(minimums, default=0),
        )
