"""Microsoft.Compute's own throttling behind ARM's: policies per subscription and per resource,
named in `x-ms-ratelimit-remaining-resource` on every Compute answer, 429 `OperationNotAllowed`
when one is spent. Budgets are set with `set_compute_budget` and refill is frozen, so each count
is exact on any machine."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest, HttpResponse
from sim_helpers import (
    CONVENIENT,
    RG,
    SUB,
    Clients,
    flex_body,
    make_clients,
    owned,
    pip_body,
    rid,
    uniform_body,
)

from sim import ArmSimulator

VMSS = "Microsoft.Compute/virtualMachineScaleSets"
API = "api-version=2024-11-01"


@pytest.fixture(scope="module")
def running() -> Iterator[ArmSimulator]:
    with owned(ArmSimulator(provision_delay_s=0.02, lro_duration_s=0.01, **CONVENIENT)) as simulator:
        yield simulator


@pytest.fixture
def crp(running: ArmSimulator) -> Iterator[ArmSimulator]:
    running.reset()
    running.freeze_refill()
    yield running
    running.wait_idle(5)


@pytest.fixture
def crp_clients(running: ArmSimulator) -> Clients:
    return make_clients(running)


def _send(clients: Clients, method: str, path: str, body: object = None) -> HttpResponse:
    return clients.compute.send_request(HttpRequest(method, f"{path}?{API}", json=body))


def _remaining(header: str) -> dict[str, int]:
    pairs = (item.rsplit(";", 1) for item in header.split(","))
    return {name: int(count) for name, count in pairs}


def test_every_compute_answer_names_its_policies(crp: ArmSimulator, crp_clients: Clients) -> None:
    crp_clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "flex", flex_body(0)).result()
    crp.set_compute_budget("GetVMScaleSet3Min", 50, SUB)
    crp.set_compute_budget("GetVMScaleSet30Min", 500, SUB)
    answer = _send(crp_clients, "GET", rid(VMSS, "flex"))
    remaining = _remaining(answer.headers["x-ms-ratelimit-remaining-resource"])
    assert remaining == {
        "Microsoft.Compute/GetVMScaleSet3Min": 49,
        "Microsoft.Compute/GetVMScaleSet30Min": 499,
    }
    assert answer.headers["x-ms-request-charge"] == "1"
    vm_list = _send(crp_clients, "GET", f"/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines")
    assert "Microsoft.Compute/HighCostGet3Min" in vm_list.headers["x-ms-ratelimit-remaining-resource"]
    crp_clients.network.public_ip_addresses.begin_create_or_update(RG, "pip", pip_body()).result()
    network_answer = _send(crp_clients, "GET", rid("Microsoft.Network/publicIPAddresses", "pip"))
    assert network_answer.status_code == 200
    assert "x-ms-ratelimit-remaining-resource" not in network_answer.headers  # Compute's alone


def test_a_spent_policy_is_a_429_naming_it(crp: ArmSimulator, crp_clients: Clients) -> None:
    crp.set_compute_budget("HighCostGet3Min", 0, SUB)
    answer = _send(
        crp_clients,
        "GET",
        f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines",
    )
    assert answer.status_code == 429
    error = answer.json()["error"]
    assert error["code"] == "OperationNotAllowed" and "HighCostGet3Min" in error["message"]
    [detail] = error["details"]
    assert detail["code"] == "TooManyRequests" and detail["target"] == "HighCostGet3Min"
    assert json.loads(detail["message"])["allowedRequestCount"] == 180
    assert answer.headers["Retry-After"] == "1"  # one token, at 180 per 3 minutes
    assert "Microsoft.Compute/HighCostGet3Min;0" in answer.headers["x-ms-ratelimit-remaining-resource"]
    # ARM's own bucket said yes: the refusal is the provider's.
    assert answer.headers["x-ms-ratelimit-remaining-subscription-reads"] != "0"
    assert crp.compute_budget_level("Microsoft.Compute/HighCostGet30Min", SUB) == 900  # nothing charged


def test_a_scale_set_has_its_own_write_budget(crp: ArmSimulator, crp_clients: Clients) -> None:
    sets = crp_clients.compute.virtual_machine_scale_sets
    sets.begin_create_or_update(RG, "a", flex_body(0)).result()
    sets.begin_create_or_update(RG, "b", flex_body(0)).result()
    assert crp.compute_budget_level("PutVMScaleSetResource", SUB, rid(VMSS, "a")) == 11
    crp.set_compute_budget("PutVMScaleSetResource", 0, SUB, rid(VMSS, "a"))
    with pytest.raises(HttpResponseError) as refused:
        sets.begin_create_or_update(RG, "a", flex_body(0), polling=False, retry_total=0)
    assert refused.value.status_code == 429 and "PutVMScaleSetResource" in str(refused.value)
    sets.begin_create_or_update(RG, "b", flex_body(0)).result()  # another set is not throttled
    with pytest.raises(ValueError, match="per resource"):
        crp.set_compute_budget("PutVMScaleSetResource", 1, SUB)
    with pytest.raises(ValueError, match="no Compute policy"):
        crp.compute_budget_level("PutEverything", SUB)


def test_a_scale_out_is_charged_per_vm_in_the_batched_budget(crp: ArmSimulator, crp_clients: Clients) -> None:
    sets = crp_clients.compute.virtual_machine_scale_sets
    sets.begin_create_or_update(RG, "uni", uniform_body(0)).result()
    before = crp.compute_budget_level("VMScaleSetBatchedVMRequests5Min", SUB)
    sets.begin_create_or_update(RG, "uni", uniform_body(5)).result()
    assert crp.compute_budget_level("VMScaleSetBatchedVMRequests5Min", SUB) == before - 5
    crp.set_compute_budget("VMScaleSetBatchedVMRequests5Min", 2, SUB)
    answer = _send(crp_clients, "PATCH", rid(VMSS, "uni"), {"sku": {"capacity": 8}})
    assert answer.status_code == 429
    assert crp.compute_budget_level("PutVMScaleSet3Min", SUB) == 375 - 2  # not charged either


def test_refill_follows_the_clock_and_freezes_with_arm() -> None:
    with owned(ArmSimulator(lro_duration_s=0.0, **CONVENIENT)) as sim:
        sim.freeze_refill()
        sim.set_compute_budget("GetVMScaleSet3Min", 0, SUB)
        sim.advance_clock(90)
        assert sim.compute_budget_level("GetVMScaleSet3Min", SUB) == 0  # frozen
        sim.freeze_refill(False)
        sim.set_compute_budget("GetVMScaleSet3Min", 0, SUB)
        sim.advance_clock(90)  # half of 3 minutes: half of 200
        assert 100 <= sim.compute_budget_level("GetVMScaleSet3Min", SUB) < 101


def test_throttling_off_is_the_opt_out() -> None:
    with owned(ArmSimulator(throttling=False, lro_duration_s=0.0, **CONVENIENT)) as free:
        clients = make_clients(free)
        clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "flex", flex_body(0)).result()
        answer = _send(clients, "GET", rid(VMSS, "flex"))
        assert "x-ms-ratelimit-remaining-resource" not in answer.headers
        with pytest.raises(ValueError, match="throttling=True"):
            free.set_compute_budget("GetVMScaleSet3Min", 0, SUB)
