"""Event Grid events: one per completed write, shaped like the published samples."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sim_helpers import (
    CONVENIENT,
    FIXTURES,
    RG,
    SUB,
    Clients,
    StaticCredential,
    make_clients,
    make_jwt,
    owned,
    pip_body,
    principal,
    rid,
)

from sim import ArmSimulator

PIP = "Microsoft.Network/publicIPAddresses"
EVENTS = FIXTURES / "eventgrid"


def _fixture(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())[0]
    return event


def test_create_update_delete_emit_one_event_each(
    events: list[dict[str, Any]], sim: ArmSimulator, clients: Clients
) -> None:
    clients.network.public_ip_addresses.begin_create_or_update(RG, "pip-e", pip_body()).result()
    clients.network.public_ip_addresses.begin_create_or_update(RG, "pip-e", pip_body()).result()
    clients.network.public_ip_addresses.begin_delete(RG, "pip-e").result()
    sim.wait_idle(2)
    assert [e["eventType"] for e in events] == [
        "Microsoft.Resources.ResourceWriteSuccess",
        "Microsoft.Resources.ResourceWriteSuccess",
        "Microsoft.Resources.ResourceDeleteSuccess",
    ]
    created, updated, deleted = events

    write_sample = _fixture("resource-write-success.eventgrid.json")
    delete_sample = _fixture("resource-delete-success.eventgrid.json")
    assert set(created) == set(write_sample)
    assert set(created["data"]) == set(write_sample["data"])  # no httpRequest on a creation
    assert set(updated["data"]) == set(write_sample["data"]) | {"httpRequest"}
    assert set(deleted) == set(delete_sample)
    assert set(deleted["data"]) == set(delete_sample["data"])
    assert set(deleted["data"]["httpRequest"]) == set(delete_sample["data"]["httpRequest"])

    assert created["topic"] == f"/subscriptions/{SUB}"
    # Write events spell resourcegroups in lower case, as the real sample does.
    assert created["subject"] == rid(PIP, "pip-e").replace("/resourceGroups/", "/resourcegroups/")
    assert created["data"]["operationName"] == f"{PIP}/write"
    assert created["data"]["authorization"]["action"] == f"{PIP}/write"
    assert created["data"]["resourceProvider"] == "Microsoft.Network"
    assert created["data"]["status"] == "Succeeded"
    assert created["data"]["subscriptionId"] == SUB
    assert created["dataVersion"] == "2" and created["metadataVersion"] == "1"
    assert created["eventTime"].endswith("Z")
    assert deleted["subject"] == rid(PIP, "pip-e")
    assert deleted["data"]["operationName"] == f"{PIP}/delete"
    http = deleted["data"]["httpRequest"]
    assert http["method"] == "DELETE" and http["clientIpAddress"] == "127.0.0.1"
    assert http["url"].startswith(sim.endpoint) and "api-version=" in http["url"]
    assert len({e["id"] for e in events}) == 3


def test_claims_come_from_the_callers_token() -> None:
    received: list[dict[str, Any]] = []
    with owned(
        ArmSimulator(**CONVENIENT, lro_duration_s=0.01, tenant_id="tenant-1"),
        principal({"appid": "app-123", "oid": "object-9", "name": "Remediator"}),
    ) as own:
        own.add_event_sink(received.append)
        token = make_jwt({"appid": "app-123", "oid": "object-9", "name": "Remediator"})
        clients = make_clients(own, StaticCredential(token))
        clients.network.public_ip_addresses.begin_create_or_update(
            RG, "pip-c", pip_body(), headers={"x-ms-correlation-request-id": "corr-42"}
        ).result()
        own.wait_idle(2)
    [event] = received
    claims = event["data"]["claims"]
    assert claims["appid"] == "app-123"
    assert claims["name"] == "Remediator"
    assert claims["http://schemas.microsoft.com/identity/claims/objectidentifier"] == "object-9"
    assert event["data"]["tenantId"] == "tenant-1"
    assert event["data"]["correlationId"] == "corr-42"


def test_opaque_token_gives_empty_claims_and_a_failing_sink_is_contained() -> None:
    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("subscriber bug")

    with owned(ArmSimulator(**CONVENIENT, lro_duration_s=0.01)) as own:
        received: list[dict[str, Any]] = []
        own.add_event_sink(broken)
        own.add_event_sink(received.append)
        make_clients(own).network.public_ip_addresses.begin_create_or_update(RG, "pip-o", pip_body()).result()
        own.wait_idle(2)
    assert received[0]["data"]["claims"] == {}


def test_refused_writes_emit_nothing(
    events: list[dict[str, Any]], sim: ArmSimulator, clients: Clients
) -> None:
    from azure.core.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError):
        clients.network.public_ip_addresses.begin_create_or_update(
            RG, "pip-r", pip_body(), headers={"If-Match": 'W/"nope"'}
        )
    sim.wait_idle(2)
    assert events == []
