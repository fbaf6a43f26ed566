"""The only module that talks to Azure Resource Manager, with arm_rest.py (its calls as JSON, for
the types this project has no SDK for), whose ``RestCalls`` the gateway inherits.

It hands out the project's own dataclasses (``model``), never SDK models: responses are read in
ARM's wire format (``as_dict()`` of the SDK's models), so an SDK upgrade touches this file only.

Every method given an id refuses one of another type than it reads or writes, and one given a
subscription or resource group refuses one that is not one, with ``InvalidResourceId`` (its
``WrongResourceType``) before any request: the SDK builds a URL from the names, and a name of
another type's id would be read as something else.

Errors are handled on purpose (``arm_errors``):
- transient answers (429 with Retry-After, 408, 5xx, dropped connections) are retried by the
  SDK pipeline's retry policy, which honours Retry-After, up to ``ARM_RETRY_TOTAL`` times;
- 412 becomes ``PreconditionFailed``: someone else changed the resource, so the caller re-reads
  and re-plans instead of clobbering (DESIGN.md decision 5);
- a write whose effect its answers do not tell becomes ``OutcomeUnknown`` (the SDK's retries
  included): the caller records ``unknown`` and the set's next reconcile reads what ARM shows;
- 404 on a read is "gone" (None); everything else is raised as ``ArmError`` with ARM's code.

Every ARM operation this module performs is declared with ``@arm_operation`` (``permissions``),
which is therefore the exact list of permissions the remediator needs (the custom role is
checked against it).

The azure.mgmt packages are imported on first use: ``azure.mgmt.network`` alone costs about
0.3 s, and an event for an unrestricted set never needs it (DESIGN.md decision 8).
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from remediation.arm_errors import (
    arm_error,
    attempt_log,
    attempted,
)
from remediation.arm_pipeline import answer_date_policy, answered, pacing_policy, pooled_transport
from remediation.arm_rest import RestCalls, WriteResult
from remediation.credentials import arm_credential, token_caller
from remediation.model import Caller
from remediation.pacing import pacer_for
from remediation.permissions import NIC_CONFIGURATION_LINKS, NIC_LINKS, arm_operation
from remediation.resource_ids import (
    NIC_TYPE,
    PUBLIC_IP_TYPE,
    SCALE_SET_TYPE,
    UNIFORM_NIC_TYPE,
    UNIFORM_VM_TYPE,
    VIRTUAL_MACHINE_TYPE,
    ResourceId,
    resource_group_name,
    subscription_id,
)
from remediation.resources import NetworkInterface, PublicIp, ScaleSet, VirtualMachine
from remediation.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.network import NetworkManagementClient

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

# How the transport all clients share is made (tests/recording_arm.py swaps it to record traffic).
_pooled_transport = pooled_transport


class ArmGateway(RestCalls):
    """Reads and writes through the real azure-mgmt clients, one pair per subscription, sharing
    one pool of connections."""

    def __init__(self, settings: Settings, credential: TokenCredential | None = None) -> None:
        self._settings = settings
        self._credential = credential or arm_credential(settings)
        self._lock = threading.Lock()
        self._compute: dict[str, ComputeManagementClient] = {}
        self._network: dict[str, NetworkManagementClient] = {}
        self._identity: Caller | None = None
        # One transport (one pool of connections to ARM, which is one host) for every client of
        # this gateway: a pool per subscription's client would open hundreds across a tenant.
        self._transport: Any = None

    # -- clients -----------------------------------------------------------------------------

    def _client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "base_url": self._settings.arm_endpoint,
            "polling_interval": self._settings.arm_poll_interval_s,
            "retry_total": self._settings.arm_retry_total,
            "connection_timeout": 10,
            "read_timeout": self._settings.arm_read_timeout_s,
            # New ones per client: a pipeline binds its policies. Pacing is per attempt (a retry
            # spends a token too), after the attempt log (which notes what ARM answered).
            "per_retry_policies": [
                answer_date_policy(),
                attempt_log(),
                pacing_policy(pacer_for(self._settings.arm_endpoint), self._settings.arm_max_pacing_wait_s),
            ],
        }
        if self._settings.arm_ca_bundle:
            options["connection_verify"] = self._settings.arm_ca_bundle
        # The transport's own connection settings: a client passes its options to a transport it
        # makes, not to one it is given. Made once, shared by every client (called under the lock).
        if self._transport is None:
            self._transport = _pooled_transport(
                {
                    key: options[key]
                    for key in ("connection_timeout", "read_timeout", "connection_verify")
                    if key in options
                }
            )
        options["transport"] = self._transport
        return options

    def _compute_client(self, subscription: str) -> ComputeManagementClient:
        key = subscription.lower()
        with self._lock:
            client = self._compute.get(key)
            if client is None:
                from azure.mgmt.compute import ComputeManagementClient

                client = ComputeManagementClient(self._credential, subscription, **self._client_options())
                self._compute[key] = client
            return client

    def _network_client(self, subscription: str) -> NetworkManagementClient:
        key = subscription.lower()
        with self._lock:
            client = self._network.get(key)
            if client is None:
                from azure.mgmt.network import NetworkManagementClient

                client = NetworkManagementClient(self._credential, subscription, **self._client_options())
                self._network[key] = client
            return client

    def identity(self) -> Caller:
        """Who this app is to ARM: the claims of its own token (the events its writes raise carry them)."""
        if self._identity is None:
            self._identity = token_caller(self._credential)
        return self._identity

    @staticmethod
    def served(read: Callable[[], T]) -> tuple[T, datetime | None]:
        """``read()``'s answer and when ARM served it (its last answer's ``Date``; None if ARM
        sent none or it could not be read)."""
        answered.date = None
        value = read()
        date = getattr(answered, "date", None)
        try:
            return value, parsedate_to_datetime(date) if date else None
        except (TypeError, ValueError):
            return value, None

    def close(self) -> None:
        with self._lock:
            clients: list[Any] = [*self._compute.values(), *self._network.values()]
            self._compute.clear()
            self._network.clear()
            self._transport = None  # closed with them: the next client makes another
        for client in clients:
            client.close()

    # -- calls -------------------------------------------------------------------------------

    @staticmethod
    def _read(call: Callable[[], Any]) -> Mapping[str, Any] | None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            return dict(call().as_dict())
        except ResourceNotFoundError:
            return None
        except AzureError as error:
            raise arm_error(error) from error

    @staticmethod
    def _list(call: Callable[[], Iterable[Any]]) -> list[Mapping[str, Any]]:
        from azure.core.exceptions import AzureError

        try:
            return [dict(item.as_dict()) for item in call()]
        except AzureError as error:
            raise arm_error(error) from error

    @classmethod
    def _write(cls, start: Callable[..., Any]) -> WriteResult:
        """Start a long-running write, wait for it, and keep the request id of its first response."""
        request_ids: list[str] = []

        def remember_request_id(response: Any) -> None:
            request_id = response.http_response.headers.get("x-ms-request-id")
            if request_id and not request_ids:
                request_ids.append(request_id)

        result = attempted(lambda: start(raw_response_hook=remember_request_id).result())
        body = dict(result.as_dict()) if result is not None else None
        return WriteResult(request_ids[0] if request_ids else "", body, time.time())

    def _write_json(
        self, begin: Callable[..., Any], target: ResourceId, body: Mapping[str, Any], if_match: str = ""
    ) -> WriteResult:
        """A long-running write whose body is the wire JSON itself (no SDK model in between to drop
        or rename a field), conditional on ``if_match`` when given."""
        headers = {"If-Match": if_match} if if_match else {}
        payload = json.dumps(body).encode()
        return self._write(
            lambda **hooks: begin(
                target.resource_group,
                target.name,
                io.BytesIO(payload),
                content_type="application/json",
                headers=headers,
                **hooks,
            )
        )

    @arm_operation("Microsoft.Compute/virtualMachineScaleSets/read")
    def get_scale_set(self, set_id: ResourceId) -> ScaleSet | None:
        set_id.require(SCALE_SET_TYPE)
        client = self._compute_client(set_id.subscription)
        doc = self._read(lambda: client.virtual_machine_scale_sets.get(set_id.resource_group, set_id.name))
        return ScaleSet.from_arm(doc) if doc is not None else None

    @arm_operation("Microsoft.Compute/virtualMachineScaleSets/read")
    def list_scale_sets(self, subscription: str) -> list[ScaleSet]:
        """Every scale set of one subscription, by listing (the sweep's fallback)."""
        subscription_id(subscription)
        client = self._compute_client(subscription)
        return [ScaleSet.from_arm(doc) for doc in self._list(client.virtual_machine_scale_sets.list_all)]

    @arm_operation("Microsoft.Compute/virtualMachines/read")
    def get_vm(self, vm_id: ResourceId) -> VirtualMachine | None:
        vm_id.require(VIRTUAL_MACHINE_TYPE)
        client = self._compute_client(vm_id.subscription)
        doc = self._read(lambda: client.virtual_machines.get(vm_id.resource_group, vm_id.name))
        return VirtualMachine.from_arm(doc) if doc is not None else None

    @arm_operation("Microsoft.Compute/virtualMachines/read")
    def list_scale_set_vms(self, set_id: ResourceId) -> list[VirtualMachine]:
        """A Flexible set's VMs: the resource group's VMs filtered by their scale set."""
        set_id.require(SCALE_SET_TYPE)
        client = self._compute_client(set_id.subscription)
        query = f"'virtualMachineScaleSet/id' eq '{set_id.value}'"
        docs = self._list(lambda: client.virtual_machines.list(set_id.resource_group, filter=query))
        return [VirtualMachine.from_arm(doc) for doc in docs]

    @arm_operation("Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read")
    def list_uniform_instances(self, set_id: ResourceId) -> list[VirtualMachine]:
        """A Uniform set's instances (they live under the set)."""
        set_id.require(SCALE_SET_TYPE)
        client = self._compute_client(set_id.subscription)
        docs = self._list(
            lambda: client.virtual_machine_scale_set_vms.list(set_id.resource_group, set_id.name)
        )
        return [VirtualMachine.from_arm(doc) for doc in docs]

    @arm_operation("Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read")
    def get_uniform_instance(self, instance: ResourceId) -> VirtualMachine | None:
        instance.require(UNIFORM_VM_TYPE)
        client = self._compute_client(instance.subscription)
        set_name, instance_id = instance.names[0], instance.names[1]
        doc = self._read(
            lambda: client.virtual_machine_scale_set_vms.get(instance.resource_group, set_name, instance_id)
        )
        return VirtualMachine.from_arm(doc) if doc is not None else None

    @arm_operation("Microsoft.Compute/virtualMachineScaleSets/networkInterfaces/read")
    def list_uniform_nics(self, set_id: ResourceId) -> list[NetworkInterface]:
        """Every NIC of a Uniform set's instances, in one paged read."""
        set_id.require(SCALE_SET_TYPE)
        client = self._network_client(set_id.subscription)
        docs = self._list(
            lambda: client.network_interfaces.list_virtual_machine_scale_set_network_interfaces(
                set_id.resource_group, set_id.name
            )
        )
        return [NetworkInterface.from_arm(doc) for doc in docs]

    @arm_operation("Microsoft.Compute/virtualMachineScaleSets/virtualMachines/networkInterfaces/read")
    def get_uniform_nic(self, nic_id: ResourceId) -> NetworkInterface | None:
        """A Uniform instance's NIC by id (a view of the set: .../virtualMachines/N/networkInterfaces/X)."""
        nic_id.require(UNIFORM_NIC_TYPE)
        client = self._network_client(nic_id.subscription)
        set_name, instance_id, nic_name = nic_id.names[0], nic_id.names[1], nic_id.names[2]
        doc = self._read(
            lambda: client.network_interfaces.get_virtual_machine_scale_set_network_interface(
                nic_id.resource_group, set_name, instance_id, nic_name
            )
        )
        return NetworkInterface.from_arm(doc) if doc is not None else None

    @arm_operation("Microsoft.Network/networkInterfaces/read")
    def get_nic(self, nic_id: ResourceId) -> NetworkInterface | None:
        nic_id.require(NIC_TYPE)
        client = self._network_client(nic_id.subscription)
        doc = self._read(lambda: client.network_interfaces.get(nic_id.resource_group, nic_id.name))
        return NetworkInterface.from_arm(doc) if doc is not None else None

    @arm_operation("Microsoft.Network/networkInterfaces/read")
    def list_nics(self, subscription: str, resource_group: str) -> list[NetworkInterface]:
        """All NICs of a resource group in one paged read (cheaper than a GET per NIC)."""
        subscription_id(subscription)
        resource_group_name(resource_group)
        client = self._network_client(subscription)
        docs = self._list(lambda: client.network_interfaces.list(resource_group))
        return [NetworkInterface.from_arm(doc) for doc in docs]

    @arm_operation("Microsoft.Network/publicIPAddresses/read")
    def get_public_ip(self, ip_id: ResourceId) -> PublicIp | None:
        ip_id.require(PUBLIC_IP_TYPE)
        client = self._network_client(ip_id.subscription)
        doc = self._read(lambda: client.public_ip_addresses.get(ip_id.resource_group, ip_id.name))
        return PublicIp.from_arm(doc) if doc is not None else None

    @arm_operation("Microsoft.Network/networkInterfaces/write", *NIC_LINKS)
    def put_nic(self, nic_id: ResourceId, body: Mapping[str, Any], if_match: str) -> WriteResult:
        """Replace a NIC, only if it still carries ``if_match`` (else PreconditionFailed)."""
        nic_id.require(NIC_TYPE)
        client = self._network_client(nic_id.subscription)
        return self._write_json(client.network_interfaces.begin_create_or_update, nic_id, body, if_match)

    @arm_operation("Microsoft.Compute/virtualMachines/delete")
    def delete_vm(self, vm_id: ResourceId) -> WriteResult:
        """Delete a Flexible set's VM (a Uniform set's instance: ``delete_uniform_instance``)."""
        vm_id.require(VIRTUAL_MACHINE_TYPE)
        client = self._compute_client(vm_id.subscription)
        return self._write(
            lambda **hooks: client.virtual_machines.begin_delete(vm_id.resource_group, vm_id.name, **hooks)
        )

    @arm_operation("Microsoft.Compute/virtualMachineScaleSets/virtualMachines/delete")
    def delete_uniform_instance(self, instance: ResourceId) -> WriteResult:
        instance.require(UNIFORM_VM_TYPE)
        client = self._compute_client(instance.subscription)
        set_name, instance_id = instance.names[0], instance.names[1]
        return self._write(
            lambda **hooks: client.virtual_machine_scale_set_vms.begin_delete(
                instance.resource_group, set_name, instance_id, **hooks
            )
        )

    @arm_operation("Microsoft.Compute/virtualMachineScaleSets/manualUpgrade/action")
    def upgrade_instances(self, set_id: ResourceId, instance_ids: list[str]) -> WriteResult:
        """Bring a Uniform set's instances up to its latest model (their NICs are made again)."""
        set_id.require(SCALE_SET_TYPE)
        client = self._compute_client(set_id.subscription)
        begin = client.virtual_machine_scale_sets.begin_update_instances
        return self._write_json(begin, set_id, {"instanceIds": instance_ids})

    @arm_operation("Microsoft.Compute/virtualMachineScaleSets/write", *NIC_CONFIGURATION_LINKS)
    def patch_scale_set(self, set_id: ResourceId, body: Mapping[str, Any], if_match: str) -> WriteResult:
        """Change part of a scale set (its capacity, its model's NICs), only if it still carries
        ``if_match``: a PATCH sends only what changes, so ARM authorises only the links in it."""
        set_id.require(SCALE_SET_TYPE)
        client = self._compute_client(set_id.subscription)
        return self._write_json(client.virtual_machine_scale_sets.begin_update, set_id, body, if_match)

    @arm_operation("Microsoft.Network/publicIPAddresses/delete")
    def delete_public_ip(self, ip_id: ResourceId) -> WriteResult:
        """Ask ARM to delete a detached public IP and return once it accepted (202).

        Not polled: the IP is already off the NIC, so its exposure has ended, and polling every
        deletion would spend the read budget the next detaches need under throttling. The caller
        confirms the deletions with one list of the resource group's public IPs.
        """
        ip_id.require(PUBLIC_IP_TYPE)
        client = self._network_client(ip_id.subscription)
        return self._write(
            lambda **hooks: client.public_ip_addresses.begin_delete(
                ip_id.resource_group, ip_id.name, polling=False, **hooks
            )
        )

    @arm_operation("Microsoft.Network/publicIPAddresses/read")
    def list_public_ips(self, subscription: str, resource_group: str) -> list[PublicIp]:
        subscription_id(subscription)
        resource_group_name(resource_group)
        client = self._network_client(subscription)
        return [
            PublicIp.from_arm(doc)
            for doc in self._list(lambda: client.public_ip_addresses.list(resource_group))
        ]
