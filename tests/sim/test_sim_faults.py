"""Injected faults: seeded (a run repeats exactly), bounded, and each shaped as ARM's."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.rest import HttpRequest
from sim_helpers import CONVENIENT, RG, Clients, make_clients, owned, pip_body, rid

from sim import ArmSimulator, Faults

PIP = "Microsoft.Network/publicIPAddresses"
API = "?api-version=2024-05-01"
# How long the client waits for an answer: far above a normal answer even on a slow, busy
# machine (milliseconds), and far below an injected hold, so only a hold ever times out.
READ_TIMEOUT_S = 1.0
MIXED = Faults(
    seed=7,
    rate_500=0.15,
    rate_503=0.1,
    rate_timeout=0.1,
    rate_drop=0.1,
    rate_lro_failed=0.1,
    timeout_hold_s=5.0,  # real seconds at time scale 1: five times the client's read timeout
    max_faults=100,
)


def _outcomes(clients: Clients, count: int) -> list[str]:
    """A fixed sequence of PUTs and GETs, without retries: what the client saw for each.

    Each PUT creates a new public IP and each GET reads the one just PUT, so no answer depends
    on whether an operation has finished yet (a second PUT could meet a running one: 429).
    """
    seen: list[str] = []
    for i in range(count):
        method = "PUT" if i % 2 == 0 else "GET"
        name = f"pip-{i - i % 2}"
        body = pip_body().as_dict() if method == "PUT" else None
        request = HttpRequest(method, f"{rid(PIP, name)}{API}", json=body)
        try:
            answer = clients.network.send_request(request, retry_total=0, read_timeout=READ_TIMEOUT_S)
        except (ServiceRequestError, ServiceResponseError) as exc:
            seen.append(type(exc).__name__)
            continue
        code = answer.json().get("error", {}).get("code", "") if answer.status_code >= 400 else ""
        seen.append(f"{answer.status_code} {code}".strip())
    return seen


def test_the_same_seed_gives_the_same_sequence_of_responses() -> None:
    runs: list[list[str]] = []
    # Every held answer costs the client its read timeout: seed 7 holds 3 of these 40 requests.
    with owned(ArmSimulator(**CONVENIENT, lro_duration_s=0.0, faults=MIXED)) as sim:
        clients = make_clients(sim)
        for _ in range(2):
            sim.reset()  # forget resources; the fault sequence restarts from its seed
            runs.append(_outcomes(clients, 40))
            sim.wait_idle(5)
        sim.set_faults(replace(MIXED, seed=8))
        sim.reset()
        other_seed = _outcomes(clients, 10)  # seed 8 holds none of its first 10
        sim.wait_idle(5)
    assert runs[0] == runs[1]
    kinds = set(runs[0])
    assert {"500 InternalServerError", "503 ServiceUnavailable", "200", "201"} <= kinds
    assert "ServiceResponseError" in kinds  # drops and timeouts
    assert other_seed != runs[0][:10]


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


# ---------------------------------------------------------------------------- after the work


def _put(clients: Clients, name: str, **body: Any) -> Any:
    request = HttpRequest("PUT", f"{rid(PIP, name)}{API}", json={**pip_body().as_dict(), **body})
    return clients.network.send_request(request, retry_total=0)


def test_a_500_after_the_work_applies_the_write_yet_the_client_sees_500(
    sim: ArmSimulator, clients: Clients
) -> None:
    clients.network.public_ip_addresses.begin_create_or_update(RG, "pip-w", pip_body()).result()
    sim.set_faults(Faults(seed=1, rate_500_after_work=1.0, max_faults=2))
    try:
        raw = _put(clients, "pip-w", tags={"changed": "yes"})
        sim.wait_idle(5)
        with pytest.raises(HttpResponseError) as caught:
            clients.network.public_ip_addresses.begin_create_or_update(
                RG, "pip-new", pip_body(), retry_total=0
            )
        met = sim.faults_met()
    finally:
        sim.set_faults(None)
    assert raw.status_code == 500
    assert raw.json()["error"]["code"] == "InternalServerError"
    assert raw.headers["x-ms-request-id"] and raw.headers["x-ms-correlation-request-id"]
    assert "Azure-AsyncOperation" not in raw.headers  # the real answer is gone, headers and all
    assert caught.value.status_code == 500
    assert caught.value.error is not None and caught.value.error.code == "InternalServerError"
    changed = sim.get_resource(rid(PIP, "pip-w"))
    assert changed is not None and changed["tags"] == {"changed": "yes"}  # the update was applied
    sim.wait_idle(5)
    created = sim.get_resource(rid(PIP, "pip-new"))  # and the creation, whose operation completed
    assert created is not None and created["properties"]["provisioningState"] == "Succeeded"
    puts = [r for r in sim.requests() if r.method == "PUT"]
    assert [(r.status, r.error_code) for r in puts[-2:]] == [(500, "InternalServerError")] * 2
    assert met == {"500-after-work": 2}


def test_a_drop_after_the_work_applies_the_write_and_closes_the_connection(
    sim: ArmSimulator, clients: Clients
) -> None:
    clients.network.public_ip_addresses.begin_create_or_update(RG, "pip-gone", pip_body()).result()
    sim.set_faults(Faults(seed=1, rate_drop_after_work=1.0, max_faults=2))
    try:
        with pytest.raises(ServiceResponseError):
            clients.network.public_ip_addresses.begin_create_or_update(RG, "pip-d", pip_body(), retry_total=0)
        with pytest.raises(ServiceResponseError):
            clients.network.public_ip_addresses.begin_delete(RG, "pip-gone", retry_total=0)
        met, total = sim.faults_met(), sim.faults_injected
    finally:
        sim.set_faults(None)
    sim.wait_idle(5)
    assert sim.get_resource(rid(PIP, "pip-d")) is not None  # created although the client never heard
    assert sim.get_resource(rid(PIP, "pip-gone")) is None  # deleted likewise
    writes = [r for r in sim.requests() if r.method in ("PUT", "DELETE")]
    assert [(r.method, r.status) for r in writes[-2:]] == [("PUT", 0), ("DELETE", 0)]
    assert met == {"drop-after-work": 2} and total == 2


def test_after_work_faults_never_fire_on_reads_nor_replace_a_refusal(
    sim: ArmSimulator, clients: Clients
) -> None:
    sim.set_faults(Faults(seed=2, rate_500_after_work=0.5, rate_drop_after_work=0.5))
    try:
        reads = [
            clients.network.send_request(HttpRequest("GET", f"{rid(PIP, 'none')}{API}"), retry_total=0)
            for _ in range(20)
        ]
        assert [r.status_code for r in reads] == [404] * 20
        assert sim.faults_met() == {} and sim.faults_injected == 0
        stale = HttpRequest(
            "PUT", f"{rid(PIP, 'pip-s')}{API}", json=pip_body().as_dict(), headers={"If-Match": 'W/"stale"'}
        )
        refused = [clients.network.send_request(stale, retry_total=0) for _ in range(5)]
        # The work was refused, so its own answer stands and the fault is not counted.
        assert [r.status_code for r in refused] == [412] * 5
        assert sim.faults_met() == {}
    finally:
        sim.set_faults(None)


def test_faults_are_counted_per_kind(sim: ArmSimulator, clients: Clients) -> None:
    sim.set_faults(
        Faults(seed=11, rate_500=0.2, rate_drop=0.2, rate_500_after_work=0.2, rate_drop_after_work=0.2)
    )
    seen: Counter[str] = Counter()
    try:
        for i in range(30):
            try:
                status = str(_put(clients, f"pip-{i}").status_code)
            except ServiceResponseError:
                status = "dropped"
            applied = sim.get_resource(rid(PIP, f"pip-{i}")) is not None
            seen[f"{status} {'applied' if applied else 'not applied'}"] += 1
        met = sim.faults_met()
        total = sim.faults_injected
    finally:
        sim.set_faults(None)
    # What the client saw, with what ARM did, tells the four kinds apart.
    assert met == {
        kind: count
        for kind, count in {
            "500": seen["500 not applied"],
            "drop": seen["dropped not applied"],
            "500-after-work": seen["500 applied"],
            "drop-after-work": seen["dropped applied"],
        }.items()
        if count
    }
    assert len(met) == 4 and sum(met.values()) == total == 30 - seen["201 applied"]
    sim.reset()
    assert sim.faults_met() == {}


def test_the_after_work_kinds_take_only_draws_that_met_no_fault_before() -> None:
    from sim.faults import FaultInjector, FaultKind

    unbounded = replace(MIXED, max_faults=1000)  # so the bound stops neither sequence
    before, after = (
        FaultInjector(unbounded),
        FaultInjector(replace(unbounded, rate_500_after_work=0.2, rate_drop_after_work=0.2)),
    )
    for i in range(200):
        method = "PUT" if i % 3 else "GET"
        old, new = before.decide(method, PIP), after.decide(method, PIP)
        assert old.latency_s == new.latency_s
        assert new.kind is old.kind or (
            old.kind is FaultKind.NONE and new.kind.after_work and method == "PUT"
        )
    assert set(after.met()) - set(before.met()) == {"500-after-work", "drop-after-work"}
