"""The simulator's refusals worded as Azure words them, each checked against ARM traffic recorded
from Azure (shared/fixtures/recorded-arm): a stale If-Match per resource provider, a missing
top-level resource."""

from __future__ import annotations

import re
from typing import Any

import pytest
from azure.core.rest import HttpRequest
from recordings import interactions
from sim_helpers import RG, Clients, flex_body, pip_body, rid

from sim import ArmSimulator

PIP = "Microsoft.Network/publicIPAddresses"
VMSS = "Microsoft.Compute/virtualMachineScaleSets"


def _recorded(cassette: str, status: int) -> dict[str, Any]:
    (answer,) = [i for i in interactions(cassette) if i.status == status and i.method == "PUT"][:1]
    body: dict[str, Any] = answer.body["error"]
    return body


def _generic(text: str) -> str:
    """A message with its ids and etags blanked: what must match is the wording."""
    text = re.sub(r"/subscriptions/\S+?(?= in | of |\.$|$)", "<id>", text)
    return re.sub(r'W/"[^"]*"|"[^"]*"', "<etag>", text)


def _stale_put(clients: Clients, path: str, body: Any) -> dict[str, Any]:
    request = HttpRequest(
        "PUT", f"{path}?api-version=2024-05-01", json=body, headers={"If-Match": 'W/"invalid"'}
    )
    answer = clients.network.send_request(request)
    assert answer.status_code == 412
    error: dict[str, Any] = answer.json()["error"]
    return error


def test_a_stale_if_match_on_network_is_worded_as_nrp_words_it(sim: ArmSimulator, clients: Clients) -> None:
    clients.network.public_ip_addresses.begin_create_or_update(RG, "testResource", pip_body()).result()
    sim.wait_idle(10)
    error = _stale_put(clients, rid(PIP, "testResource"), pip_body().as_dict())
    recorded = _recorded("publicipaddressclient.yaml", 412)
    assert (error["code"], error["message"]) == (recorded["code"], recorded["message"])
    assert [d["code"] for d in error["details"]] == [d["code"] for d in recorded["details"]]
    assert _generic(error["details"][0]["message"]) == _generic(recorded["details"][0]["message"])


def test_a_stale_if_match_on_compute_is_worded_as_crp_words_it(sim: ArmSimulator, clients: Clients) -> None:
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(
        RG, "testResource", flex_body(0)
    ).result()
    sim.wait_idle(10)
    error = _stale_put(clients, rid(VMSS, "testResource"), flex_body(0).as_dict())
    recorded = _recorded("virtualmachinescalesetclient.yaml", 412)
    assert error["code"] == recorded["code"] == "PreconditionFailed"
    assert _generic(error["message"]) == _generic(recorded["message"])


@pytest.mark.parametrize(
    ("cassette", "path"),
    [
        ("publicipaddressclient.yaml", "Microsoft.Network/publicIPAddresses/testResourcenotfound"),
        ("virtualmachinescalesetclient.yaml", "Microsoft.Compute/virtualMachineScaleSets/testResource"),
    ],
)
def test_a_missing_resource_is_arms_404(
    sim: ArmSimulator, clients: Clients, cassette: str, path: str
) -> None:
    (recorded,) = [i for i in interactions(cassette) if i.status == 404 and i.path.endswith(path)][:1]
    resource_type, name = path.rsplit("/", 1)
    answer = clients.network.send_request(
        HttpRequest("GET", f"{rid(resource_type, name)}?api-version=2024-05-01")
    )
    error = answer.json()["error"]
    assert answer.status_code == 404 and error["code"] == recorded.body["error"]["code"] == "ResourceNotFound"
    expected = re.sub(r"resource group '[^']*'", "resource group <rg>", recorded.body["error"]["message"])
    assert re.sub(r"resource group '[^']*'", "resource group <rg>", error["message"]) == expected
