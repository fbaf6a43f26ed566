"""The only module that talks to Azure Resource Manager.

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

import contextlib
import io
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from remediation.arm_errors import (
    ArmError,
    arm_error,
    attempt_log,
    attempted,
)
from remediation.arm_pipeline import answer_date_policy, answered, pacing_policy, pooled_transport
from remediation.credentials import arm_credential, token_caller
from remediation.model import AutoscaleSetting, Caller, NetworkInterface, PublicIp, ScaleSet, VirtualMachine
from remediation.pacing import pacer_for
from remediation.permissions import NIC_CONFIGURATION_LINKS, NIC_LINKS, arm_operation
from remediation.resource_ids import (
    AUTOSCALE_SETTING_TYPE,
    MANAGEMENT_GROUP_PREFIX,
    NIC_TYPE,
    PUBLIC_IP_TYPE,
    SCALE_SET_TYPE,
    UNIFORM_NIC_TYPE,
    UNIFORM_VM_TYPE,
    VIRTUAL_MACHINE_TYPE,
    InvalidResourceId,
    ResourceId,
    management_group_name,
    resource_group_name,
    subscription_id,
)
from remediation.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.network import NetworkManagementClient

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

# The transport each client is made with (tests/recording_arm.py swaps it to record the traffic).
_pooled_transport = pooled_transport

RESOURCE_GRAPH_API = "2022-10-01"
AUTOSCALE_API = "2022-10-01"
AUTHORIZATION_API = "2022-04-01"
EVENT_GRID_API = "2025-02-15"  # as infra/app/event-subscription.bicep
SYSTEM_TOPIC_TYPE = "Microsoft.EventGrid/systemTopics"
MANAGEMENT_GROUPS_API = "2023-04-01"
MAX_GRAPH_PAGES = 100
GRAPH_PAGE_SIZE = 1000  # Resource Graph's most rows a page
# The client a request at tenant scope (a management group) goes through: the SDK's clients are
# made per subscription, and the paths sent are whole, so this subscription is never in one.
_TENANT_SCOPE = "00000000-0000-0000-0000-000000000000"
# A descendant that is a subscription: the spec's example types it
# "Microsoft.Management/managementGroups/subscriptions", its schema "/subscriptions"; its id is
# "/subscriptions/<id>" either way, so that is what is read.
_SUBSCRIPTION_TYPES = frozenset({"microsoft.management/managementgroups/subscriptions", "/subscriptions"})
# The sweep's one query: every scale set with its tags (the policy decides which are restricted).
SCALE_SET_QUERY = (
    "resources | where type =~ 'microsoft.compute/virtualmachinescalesets' | project id, name, type, tags"
)


@dataclass(frozen=True)
class WriteResult:
    """What a completed write returned: ARM's request id (for the audit log) and the final body."""

    request_id: str
    body: Mapping[str, Any] | None
    completed_at: float = 0.0  # time.time() when ARM reported the operation done


class ArmGateway:
    """Reads and writes through the real azure-mgmt clients, one pair per subscription."""

    def __init__(self, settings: Settings, credential: TokenCredential | None = None) -> None:
        self._settings = settings
        self._credential = credential or arm_credential(settings)
        self._lock = threading.Lock()
        self._compute: dict[str, ComputeManagementClient] = {}
        self._network: dict[str, NetworkManagementClient] = {}
        self._identity: Caller | None = None

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
        # makes, not to one it is given.
        options["transport"] = _pooled_transport(
            {
                key: options[key]
                for key in ("connection_timeout", "read_timeout", "connection_verify")
                if key in options
            }
        )
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

    @arm_operation("Microsoft.ResourceGraph/resources/read")
    def query_scale_sets(
        self, subscriptions: Iterable[str], management_groups: Iterable[str] = ()
    ) -> list[ScaleSet]:
        """Every scale set of the subscriptions and of every subscription under the management
        groups, with its tags: one paged Resource Graph query per kind of scope (a query takes
        subscriptions or management groups, not both), each set once."""
        subscription_ids = sorted({subscription_id(s).lower() for s in subscriptions})
        groups = sorted({management_group_name(g).lower() for g in management_groups})
        found: dict[str, ScaleSet] = {}
        if groups:
            found.update((s.id.key, s) for s in self._graph(_TENANT_SCOPE, {"managementGroups": groups}))
        if subscription_ids:
            scope = {"subscriptions": subscription_ids}
            found.update((s.id.key, s) for s in self._graph(subscription_ids[0], scope))
        return list(found.values())

    def _graph(self, client: str, scope: Mapping[str, list[str]]) -> list[ScaleSet]:
        """The sweep's query at one scope, every page (``$skipToken``)."""
        found: list[ScaleSet] = []
        skip_token = ""
        for _page in range(MAX_GRAPH_PAGES):
            options: dict[str, Any] = {"resultFormat": "objectArray", "$top": GRAPH_PAGE_SIZE}
            if skip_token:
                options["$skipToken"] = skip_token
            query = {**scope, "query": SCALE_SET_QUERY, "options": options}
            path = f"/providers/Microsoft.ResourceGraph/resources?api-version={RESOURCE_GRAPH_API}"
            body, _ = self._send(client, "POST", path, query)
            found.extend(ScaleSet.from_arm(row) for row in body.get("data", []))
            skip_token = body.get("$skipToken") or ""
            if not skip_token:
                return found
        raise ArmError(None, "TooManyPages", f"Resource Graph answered more than {MAX_GRAPH_PAGES} pages")

    @arm_operation("Microsoft.Management/managementGroups/descendants/read")
    def management_group_subscriptions(self, group: str) -> list[str]:
        """The ids of the subscriptions under a management group, at any depth (its descendants,
        paged), as ARM shows them now."""
        path = f"{MANAGEMENT_GROUP_PREFIX}{management_group_name(group)}/descendants"
        path += f"?api-version={MANAGEMENT_GROUPS_API}"
        found: list[str] = []
        for doc in self._pages(_TENANT_SCOPE, path, "management group descendants", 10 * MAX_GRAPH_PAGES):
            descendant_id = str(doc.get("id", "")).rstrip("/").split("/")
            if str(doc.get("type", "")).lower() in _SUBSCRIPTION_TYPES or (
                len(descendant_id) == 3 and descendant_id[1].lower() == "subscriptions"
            ):
                with contextlib.suppress(InvalidResourceId):  # no subscription ARM would name
                    found.append(subscription_id(doc.get("name") or descendant_id[-1]))
        return found

    def _send(
        self, subscription: str, method: str, path: str, body: Any = None
    ) -> tuple[dict[str, Any], str]:
        """A raw ARM request through the compute client's pipeline (auth, retries), for the
        resource types without an SDK in this project (autoscale settings, Resource Graph).
        Returns the JSON body and ARM's request id. A PUT or PATCH is judged as a write."""
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest

        client = self._compute_client(subscription)

        def send() -> Any:
            response = client.send_request(HttpRequest(method, path, json=body))
            response.raise_for_status()
            return response

        try:
            response = attempted(send) if method in ("PUT", "PATCH") else send()
        except ArmError:
            raise
        except AzureError as error:
            raise arm_error(error) from error
        return (dict(response.json()) if response.content else {}), response.headers.get(
            "x-ms-request-id", ""
        )

    @arm_operation("Microsoft.Insights/autoscalesettings/read")
    def list_autoscale_settings(self, subscription: str, resource_group: str) -> list[AutoscaleSetting]:
        """The autoscale settings of a resource group (the ones that scale a set live beside it)."""
        subscription_id(subscription)
        resource_group_name(resource_group)
        path = (
            f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/"
            f"Microsoft.Insights/autoscalesettings?api-version={AUTOSCALE_API}"
        )
        return [
            AutoscaleSetting.from_arm(doc) for doc in self._pages(subscription, path, "autoscale settings")
        ]

    def _pages(
        self, subscription: str, path: str, what: str, most: int = MAX_GRAPH_PAGES
    ) -> list[Mapping[str, Any]]:
        """Every element of a paged ARM list (``value``, then ``nextLink``), in wire JSON."""
        found: list[Mapping[str, Any]] = []
        for _page in range(most):
            body, _ = self._send(subscription, "GET", path)
            found.extend(doc for doc in body.get("value", []) if isinstance(doc, Mapping))
            path = str(body.get("nextLink") or "")
            if not path:
                return found
        raise ArmError(None, "TooManyPages", f"{what} answered more than {most} pages")

    # -- the deployment, as `remediation doctor` reads it (wire JSON: doctor.py judges it) -----

    @arm_operation("Microsoft.Authorization/permissions/read")
    def caller_permissions(self, scope: str) -> list[Mapping[str, Any]]:
        """The permission blocks (``actions``, ``notActions``, ...) of every role this identity
        holds at ``scope``, a subscription, resource group or scale set (Permissions - List)."""
        subscription = _scope_subscription(scope)
        path = f"{scope.rstrip('/')}/providers/Microsoft.Authorization/permissions"
        path += f"?api-version={AUTHORIZATION_API}"
        return self._pages(subscription, path, "permissions")

    @arm_operation("Microsoft.EventGrid/systemTopics/read")
    def list_system_topics(self, subscription: str, resource_group: str = "") -> list[Mapping[str, Any]]:
        """The system topics of a resource group (where the identity may read them when its roles
        are assigned at resource groups), or of the whole subscription."""
        path = f"/subscriptions/{subscription_id(subscription)}"
        if resource_group:
            path += f"/resourceGroups/{resource_group_name(resource_group)}"
        path += f"/providers/Microsoft.EventGrid/systemTopics?api-version={EVENT_GRID_API}"
        return self._pages(subscription, path, "system topics")

    @arm_operation("Microsoft.EventGrid/systemTopics/eventSubscriptions/read")
    def list_topic_event_subscriptions(self, topic: ResourceId) -> list[Mapping[str, Any]]:
        topic.require(SYSTEM_TOPIC_TYPE)
        path = f"{topic.value}/eventSubscriptions?api-version={EVENT_GRID_API}"
        return self._pages(topic.subscription, path, "event subscriptions")

    @arm_operation("Microsoft.Insights/autoscalesettings/read")
    def get_autoscale_setting(self, setting_id: ResourceId) -> AutoscaleSetting | None:
        """One autoscale setting by id (what recovery reads to tell whether a disable applied)."""
        setting_id.require(AUTOSCALE_SETTING_TYPE)
        try:
            body, _ = self._send(
                setting_id.subscription, "GET", f"{setting_id.value}?api-version={AUTOSCALE_API}"
            )
        except ArmError as error:
            if error.status == 404:
                return None
            raise
        return AutoscaleSetting.from_arm(body)

    @arm_operation("Microsoft.Insights/autoscalesettings/write")
    def patch_autoscale_setting(self, setting_id: ResourceId, body: Mapping[str, Any]) -> WriteResult:
        """Change some properties of an autoscale setting (written synchronously: nothing to poll;
        autoscale settings carry no etag to match)."""
        setting_id.require(AUTOSCALE_SETTING_TYPE)
        path = f"{setting_id.value}?api-version={AUTOSCALE_API}"
        answer, request_id = self._send(setting_id.subscription, "PATCH", path, body)
        return WriteResult(request_id, answer, time.time())

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


def _scope_subscription(scope: str) -> str:
    """The subscription of a scope path; the path itself parsed as every id from outside is."""
    parts = scope.strip("/").split("/")
    if len(parts) < 2 or parts[0].lower() != "subscriptions":
        raise InvalidResourceId(f"{scope!r} is not a subscription, resource group or resource scope")
    if len(parts) > 2:
        if parts[2].lower() != "resourcegroups" or len(parts) < 4:
            raise InvalidResourceId(f"{scope!r} is not a subscription, resource group or resource scope")
        resource_group_name(parts[3])
        if len(parts) > 4:
            ResourceId.parse(scope)
    return subscription_id(parts[1])
