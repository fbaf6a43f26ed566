"""Injected faults: seeded (a run repeats exactly), bounded, and each shaped as ARM's."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.rest import HttpRequest
from sim_helpers import RG, Clients, make_clients, pip_body, rid

from sim import ArmSimulator, Faults

PIP = "Microsoft.Network/publicIPAddresses"
API = "?api-version=2024-05-01"
MIXED = Faults(
    seed=7,
    rate_500=0.15,
    rate_503=0.1,
    rate_timeout=0.1,
    rate_drop=0.1,
    rate_lro_failed=0.1,
    timeout_hold_s=3.0,  # 0.3 s at time scale 10, well past the client's 0.05 s read timeout
    max_faults=100,
)


def _outcomes(clients: Clients, count: int) -> list[str]:
    """A fixed sequence of PUTs and GETs, without retries: what the client saw for each."""
    seen: list[str] = []
    for i in range(count):
        name = f"pip-{i % 4}"
        method = "PUT" if i % 2 == 0 else "GET"
        body = pip_body().as_dict() if method == "PUT" else None
        request = HttpRequest(method, f"{rid(PIP, name)}{API}", json=body)
        try:
            answer = clients.network.send_request(request, retry_total=0, read_timeout=0.05)
        except (ServiceRequestError, ServiceResponseError) as exc:
            seen.append(type(exc).__name__)
            continue
        code = answer.json().get("error", {}).get("code", "") if answer.status_code >= 400 else ""
        seen.append(f"{answer.status_code} {code}".strip())
    return seen


def test_the_same_seed_gives_the_same_sequence_of_responses() -> None:
    runs: list[list[str]] = []
    with ArmSimulator(time_scale=10.0, lro_duration_s=0.0, faults=MIXED) as sim:
        clients = make_clients(sim)
        for _ in range(2):
            sim.reset()  # forget resources; the fault sequence restarts from its seed
            runs.append(_outcomes(clients, 40))
            sim.wait_idle(5)
        sim.set_faults(replace(MIXED, seed=8))
        sim.reset()
        other_seed = _outcomes(clients, 40)
        sim.wait_idle(5)
    assert runs[0] == runs[1]
    kinds = set(runs[0])
    assert {"500 InternalServerError", "503 ServiceUnavailable"} <= kinds
    assert "ServiceResponseError" in kinds  # drops and timeouts
    assert other_seed != runs[0]


def test_faults_are_bounded_and_can_be_switched_off(sim: ArmSimulator, clients: Clients) -> None:
    sim.set_faults(Faults(seed=1, rate_500=1.0, max_faults=3))
    try:
        statuses = [
            clients.network.send_request(
                HttpRequest("GET", f"{rid(PIP, 'x')}{API}"), retry_total=0
            ).status_code
            for _ in range(5)
        ]
    finally:
        sim.set_faults(None)
    assert statuses == [500, 500, 500, 404, 404]
    assert sim.faults_injected == 0  # counting restarted with the new (absent) configuration


def test_503_carries_retry_after_and_the_sdk_retries_through_faults(sim: ArmSimulator) -> None:
    from azure.mgmt.network import NetworkManagementClient
    from sim_helpers import POLL_S, SUB, StaticCredential

    clients = make_clients(sim)
    # The SDK's own retry policy, with a short backoff so the test stays quick.
    network = NetworkManagementClient(
        StaticCredential(),
        SUB,
        base_url=sim.endpoint,
        connection_verify=sim.ca_bundle,
        polling_interval=POLL_S,
        retry_backoff_factor=0.01,
    )
    sim.set_faults(Faults(seed=3, rate_503=1.0, max_faults=1, retry_after_503_s=2))
    try:
        raw = clients.network.send_request(HttpRequest("GET", f"{rid(PIP, 'x')}{API}"), retry_total=0)
        assert raw.status_code == 503 and raw.headers["Retry-After"] == "2"
        sim.set_faults(
            Faults(seed=3, rate_500=0.3, rate_drop=0.2, max_faults=4, only_methods=frozenset({"GET"}))
        )
        pip: Any = network.public_ip_addresses.begin_create_or_update(RG, "pip-r", pip_body()).result()
        assert pip.properties.provisioning_state == "Succeeded"
    finally:
        sim.set_faults(None)


def test_an_lro_can_end_failed(sim: ArmSimulator, clients: Clients) -> None:
    sim.set_faults(Faults(seed=1, rate_lro_failed=1.0, max_faults=1, only_types=frozenset({PIP})))
    try:
        poller = clients.network.public_ip_addresses.begin_create_or_update(RG, "pip-f", pip_body())
        with pytest.raises(HttpResponseError) as failed:
            poller.result()
    finally:
        sim.set_faults(None)
    assert "InternalExecutionError" in str(failed.value)
    doc = sim.get_resource(rid(PIP, "pip-f"))
    assert doc is not None and doc["properties"]["provisioningState"] == "Failed"


def test_latency_is_added_and_faults_config_is_validated(sim: ArmSimulator, clients: Clients) -> None:
    import time

    sim.set_faults(Faults(latency_s=0.2, only_methods=frozenset({"GET"})))
    try:
        started = time.monotonic()
        clients.network.send_request(HttpRequest("GET", f"{rid(PIP, 'x')}{API}"), retry_total=0)
        assert time.monotonic() - started >= 0.2
    finally:
        sim.set_faults(None)
    with pytest.raises(ValueError, match="add up"):
        Faults(rate_500=0.7, rate_503=0.7)
