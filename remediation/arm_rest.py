"""The gateway's calls that go to ARM as JSON over its clients' pipeline (``ArmGateway`` inherits
them): the resource types this project has no SDK for (autoscale settings, Resource Graph,
management groups, permissions, Event Grid), read and written as ARM's wire format. The same
rules as arm.py: every operation declared with ``@arm_operation``; ids and names refused before
any request; ARM's errors judged by ``arm_errors``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from remediation.arm_errors import ArmError, arm_error, attempted
from remediation.permissions import arm_operation
from remediation.resource_ids import (
    AUTOSCALE_SETTING_TYPE,
    MANAGEMENT_GROUP_PREFIX,
    InvalidResourceId,
    ResourceId,
    management_group_name,
    resource_group_name,
    subscription_id,
)
from remediation.resources import AutoscaleSetting, ScaleSet

if TYPE_CHECKING:
    from azure.mgmt.compute import ComputeManagementClient

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


class RestCalls:
    """ARM requests as JSON through the compute client's pipeline (auth, retries, pacing)."""

    def _compute_client(self, subscription: str) -> ComputeManagementClient:
        raise NotImplementedError  # ArmGateway's

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
