"""The Event Grid half of a deployment, made locally: the system topic of a monitored subscription and
the event subscriptions that deliver its events to the function, as infra/ deploys them.

infra/app/event-topic.bicep creates the topic (`Microsoft.Resources.Subscriptions`, source the
subscription, location global, a system-assigned identity) in the app's resource group of each
monitored subscription (infra/main.bicep: `egst-remediator-{token}`); infra/app/event-subscription.bicep
the event subscriptions on it: to the function `on_resource_event` of the function app (one event per
batch, 64 KB), the two resource event types, a StringIn filter on `data.operationName` over
`handledOperations`, with restricted resource groups a StringBeginsWith filter on `subject`, 30
attempts over 1440 minutes, dead letters to the `eventgrid-deadletter` container with the topic's
identity. Event Grid allows `maxFilterValues` (25) values across one subscription's advanced filters:
the subject prefixes go in chunks of what fits beside the operations, one event subscription per
chunk (`vmss-public-ip-remediator`, then `-2`, `-3`, ...); with none, one subscription with the
operation filter alone. The event types, operations, limit and name are read out of the bicep file
itself, so the local deployment is the one infra ships. All are created over HTTPS as the estate's
owner, each PUT polled to its end as a deployment waits for it.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from localazure.azurite import ACCOUNT_NAME, PROJECT_ROOT
from remediation.arm_rest import EVENT_GRID_API
from remediation.credentials import LoopbackCredential
from remediation.doctor_events import FUNCTION_NAME

API_VERSION = EVENT_GRID_API  # the bicep files' Microsoft.EventGrid version, as the product reads it
EVENT_SUBSCRIPTION_BICEP = PROJECT_ROOT / "infra" / "app" / "event-subscription.bicep"
APP_RESOURCE_GROUP = "rg-remediator-local"
FUNCTION_APP_NAME = "func-remediator-local"
TOPIC_NAME = "egst-remediator-local"
EVENT_SUBSCRIPTION_NAME = "vmss-public-ip-remediator"  # the first chunk's (the bicep's eventSubscriptionName)
DEAD_LETTER_CONTAINER = "eventgrid-deadletter"
# The lines of infra/app/event-subscription.bicep that event_subscription_bodies mirrors, as written:
# if one changes, a local deployment fails rather than differ from infra's.
CHUNK_RULES = (
    "var chunkSize = maxFilterValues - length(handledOperations)",
    "var chunkCount = empty(subjectPrefixes) ? 1 : ((length(subjectPrefixes) + (chunkSize - 1)) / chunkSize)",
    "[for i in range(0, chunkCount):",
    "name: (i == 0) ? eventSubscriptionName : format('{0}-{1}', eventSubscriptionName, i + 1)",
    "values: take(skip(subjectPrefixes, i * chunkSize), chunkSize)",
)
_POLL_S = 0.02
_TIMEOUT_S = 30.0


def function_app_id(subscription: str) -> str:
    """The local function app's resource id, in the app's resource group of `subscription`."""
    return (
        f"/subscriptions/{subscription}/resourceGroups/{APP_RESOURCE_GROUP}"
        f"/providers/Microsoft.Web/sites/{FUNCTION_APP_NAME}"
    )


def storage_account_id(subscription: str) -> str:
    """The app's storage account (Azurite's account) as ARM would name it."""
    return (
        f"/subscriptions/{subscription}/resourceGroups/{APP_RESOURCE_GROUP}"
        f"/providers/Microsoft.Storage/storageAccounts/{ACCOUNT_NAME}"
    )


def bicep_list(text: str, opener: str) -> list[str]:
    """The quoted strings of the first bicep array opened by `opener` (e.g. `var handledOperations =`),
    comments skipped. ValueError if there is none."""
    found = re.search(re.escape(opener) + r"\s*\[", text)
    if found is None:
        raise ValueError(f"no array '{opener} [' in the bicep file")
    values: list[str] = []
    for line in text[found.end() :].splitlines():
        code = line.split("//", 1)[0].strip()
        if code.startswith("]"):
            return values
        values.extend(re.findall(r"'([^']*)'", code))
    raise ValueError(f"the array '{opener} [' is not closed")


def bicep_literal(text: str, opener: str) -> int | str:
    """The literal (an integer or a quoted string) a bicep line opened by `opener` assigns (e.g.
    `var maxFilterValues =`). ValueError if there is none."""
    found = re.search(re.escape(opener) + r"\s*(?:(\d+)|'([^']*)')\s*(?://.*)?$", text, re.M)
    if found is None:
        raise ValueError(f"no literal '{opener} ...' in the bicep file")
    number, string = found.groups()
    return int(number) if number is not None else string


@dataclass(frozen=True)
class DeployedEvents:
    """What `deploy_events` created: the system topic's id and its event subscriptions' ids, one per
    chunk of subject prefixes (`vmss-public-ip-remediator` first)."""

    topic_id: str
    event_subscription_ids: tuple[str, ...]

    @property
    def event_subscription_id(self) -> str:
        """The first event subscription's id (`vmss-public-ip-remediator`): the only one without
        restricted resource groups or with at most one chunk of them."""
        return self.event_subscription_ids[0]


class EventDeployment:
    """Creates a subscription's topic and event subscription in the ARM simulator over HTTPS."""

    def __init__(self, endpoint: str, ca_bundle: str, credential: LoopbackCredential) -> None:
        self._endpoint = endpoint
        self._tls = ssl.create_default_context(cafile=ca_bundle)
        self._credential = credential

    def deploy(
        self,
        subscription: str,
        *,
        function_app: str,
        storage_account: str,
        restricted_resource_groups: Sequence[str] = (),
        schema: str = "EventGridSchema",
        bicep: Path = EVENT_SUBSCRIPTION_BICEP,
    ) -> DeployedEvents:
        group = f"/subscriptions/{subscription}/resourceGroups/{APP_RESOURCE_GROUP}"
        topic_id = f"{group}/providers/Microsoft.EventGrid/systemTopics/{TOPIC_NAME}"
        self._put(topic_id, topic_body(subscription))
        bodies = event_subscription_bodies(
            subscription,
            function_app=function_app,
            storage_account=storage_account,
            restricted_resource_groups=restricted_resource_groups,
            schema=schema,
            bicep_text=bicep.read_text(encoding="utf-8"),
        )
        ids = []
        for name, body in bodies.items():
            ids.append(f"{topic_id}/eventSubscriptions/{name}")
            self._put(ids[-1], body)
        return DeployedEvents(topic_id, tuple(ids))

    def _put(self, resource_id: str, body: dict[str, Any]) -> None:
        """PUT, then poll its Azure-AsyncOperation to the end; RuntimeError unless it Succeeded."""
        status, headers, answer = self._send(
            "PUT", f"{self._endpoint}{resource_id}?api-version={API_VERSION}", body
        )
        if status not in (200, 201):
            raise RuntimeError(f"PUT {resource_id} answered {status}: {answer}")
        poll = headers.get("azure-asyncoperation")
        deadline = time.monotonic() + _TIMEOUT_S
        while poll:
            _, _, state = self._send("GET", poll)
            if state.get("status") != "InProgress":
                if state.get("status") != "Succeeded":
                    raise RuntimeError(f"PUT {resource_id} ended {state}")
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PUT {resource_id} still in progress after {_TIMEOUT_S} s")
            time.sleep(_POLL_S)

    def _send(self, method: str, url: str, body: Any = None) -> tuple[int, dict[str, str], dict[str, Any]]:
        """One HTTPS request to the simulator (loopback only): status, lower-cased headers, JSON body."""
        token = self._credential.get_token("https://management.azure.com/.default").token
        split = urlsplit(url)
        if split.scheme != "https" or split.hostname != "127.0.0.1":
            raise ValueError(f"not the local ARM simulator: {url}")
        connection = http.client.HTTPSConnection(
            split.hostname, split.port, context=self._tls, timeout=_TIMEOUT_S
        )
        try:
            connection.request(
                method,
                f"{split.path}?{split.query}" if split.query else split.path,
                body=json.dumps(body).encode("utf-8") if body is not None else None,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            answer = connection.getresponse()
            raw = answer.read()
        finally:
            connection.close()
        parsed = json.loads(raw) if raw else {}
        headers = {k.lower(): v for k, v in answer.getheaders()}
        return answer.status, headers, parsed if isinstance(parsed, dict) else {"value": parsed}


def topic_body(subscription: str) -> dict[str, Any]:
    """infra/app/event-topic.bicep's system topic (its tags are the deployment's own: none here)."""
    return {
        "location": "global",
        "identity": {"type": "SystemAssigned"},
        "properties": {
            "source": f"/subscriptions/{subscription}",
            "topicType": "Microsoft.Resources.Subscriptions",
        },
    }


def event_subscription_bodies(
    subscription: str,
    *,
    function_app: str,
    storage_account: str,
    restricted_resource_groups: Sequence[str],
    schema: str,
    bicep_text: str,
) -> dict[str, dict[str, Any]]:
    """infra/app/event-subscription.bicep's event subscriptions for these parameters, by name in the
    bicep's order: its resource loop over the chunks of subject prefixes."""
    operations = bicep_list(bicep_text, "var handledOperations =")
    limit = bicep_literal(bicep_text, "var maxFilterValues =")
    first_name = bicep_literal(bicep_text, "var eventSubscriptionName =")
    if not isinstance(limit, int) or not isinstance(first_name, str):
        raise TypeError("maxFilterValues is not a number or eventSubscriptionName not a string")
    missing = [rule for rule in CHUNK_RULES if rule not in bicep_text]
    if missing:
        raise ValueError(f"the bicep no longer chunks as this deployment does: {missing} not found")
    chunk_size = limit - len(operations)
    if chunk_size < 1:
        raise ValueError(f"{len(operations)} operations leave no room in {limit} filter values")
    # The bicep's subjectPrefixes: the trailing slash keeps rg-a from matching rg-ab.
    prefixes = [
        f"/subscriptions/{subscription}/resourceGroups/{group}/" for group in restricted_resource_groups
    ]
    chunks = [prefixes[start : start + chunk_size] for start in range(0, len(prefixes), chunk_size)]
    bodies: dict[str, dict[str, Any]] = {}
    for index, chunk in enumerate(chunks or [[]]):
        name = first_name if index == 0 else f"{first_name}-{index + 1}"
        bodies[name] = event_subscription_body(
            operations,
            chunk,
            function_app=function_app,
            storage_account=storage_account,
            schema=schema,
            event_types=bicep_list(bicep_text, "includedEventTypes:"),
        )
    return bodies


def event_subscription_body(
    operations: Sequence[str],
    subject_prefixes: Sequence[str],
    *,
    function_app: str,
    storage_account: str,
    schema: str,
    event_types: Sequence[str],
) -> dict[str, Any]:
    """One event subscription of the bicep's loop: the operation filter, and the subject filter over
    `subject_prefixes` (its chunk) unless there are none."""
    advanced: list[dict[str, Any]] = [
        {"operatorType": "StringIn", "key": "data.operationName", "values": list(operations)}
    ]
    if subject_prefixes:
        advanced.append(
            {"operatorType": "StringBeginsWith", "key": "subject", "values": list(subject_prefixes)}
        )
    return {
        "properties": {
            "eventDeliverySchema": schema,
            "destination": {
                "endpointType": "AzureFunction",
                "properties": {
                    "resourceId": f"{function_app}/functions/{FUNCTION_NAME}",
                    "maxEventsPerBatch": 1,
                    "preferredBatchSizeInKilobytes": 64,
                },
            },
            "filter": {
                "includedEventTypes": list(event_types),
                "advancedFilters": advanced,
            },
            "retryPolicy": {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440},
            "deadLetterWithResourceIdentity": {
                "identity": {"type": "SystemAssigned"},
                "deadLetterDestination": {
                    "endpointType": "StorageBlob",
                    "properties": {"resourceId": storage_account, "blobContainerName": DEAD_LETTER_CONTAINER},
                },
            },
        }
    }
