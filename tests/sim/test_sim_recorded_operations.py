"""Each operation the product performs, sent to the simulator as it was sent to Azure, and answered
as Azure answered it (shared/fixtures/recorded-arm, recorded by cloud-provider-azure's integration
tests): the status code; synchronous or long-running (`Azure-AsyncOperation`, `Location`, the body's
provisioningState); the status URL's shape and what it answers; no `Retry-After`; the rate-limit
headers ARM sends.

A test replays its cassette up to the recorded request (with the recorded bodies, the subscription
and resource group made the simulator's; long-running writes waited for), sends that request through
the real SDK pipeline, and compares the answers. Where the simulator answered otherwise, the
simulator was changed (sim/operations.py has the table).

Replayed on the way but answered otherwise, none of them a request the product makes: a list in a
resource group that does not exist (Azure: 404 `ResourceGroupNotFound`; the simulator keeps no
resource groups and lists nothing), a public IP update (Azure: 200 `Succeeded` with an operation;
the simulator: 200 `Updating`), a VM update (Azure: 200 `Updating` with no operation, polled on the
resource; the simulator announces an operation), a scale-set VM PUT (not served: 405) and the
`instanceView` GETs (not served).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.rest import HttpRequest
from recordings import Interaction, interactions
from sim_fixtures import TEST_TIMINGS
from sim_helpers import CONVENIENT, RG, SUB, Clients, make_clients, owned

from sim import ArmSimulator

RECORDED_SUB = "00000000-0000-0000-0000-000000000000"
# Headers whose presence says how a write was answered (lower-cased).
SHAPE_HEADERS = (
    "azure-asyncoperation",
    "location",
    "azure-asyncnotification",
    "retry-after",
    "etag",
    "x-ms-failure-cause",
)
_GROUP = re.compile(r"/resourcegroups/(aks-cit-[A-Za-z]+)", re.IGNORECASE)
_STATUS_PATH = re.compile(
    r"^/subscriptions/[^/]+/providers/(?P<ns>Microsoft\.(?:Network|Compute))/locations/(?P<region>[^/]+)/"
    r"(?P<kind>operations|operationResults)/(?P<id>[^/]+)$"
)


@dataclass(frozen=True)
class Answer:
    """One answer, the recorded one or the simulator's: what the comparison looks at."""

    status: int
    headers: dict[str, str]  # lower-cased names
    body: Any

    @property
    def provisioning_state(self) -> str | None:
        props = self.body.get("properties") if isinstance(self.body, dict) else None
        return props.get("provisioningState") if isinstance(props, dict) else None

    @property
    def shape(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "provisioningState": self.provisioning_state,
            **{name: name in self.headers for name in SHAPE_HEADERS},
        }

    @property
    def error_code(self) -> str | None:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return error.get("code") if isinstance(error, dict) else None

    @property
    def rate_limit_headers(self) -> set[str]:
        return {name for name in self.headers if name.startswith("x-ms-ratelimit-")}


def recorded_answer(interaction: Interaction) -> Answer:
    return Answer(interaction.status, interaction.header_values, interaction.body)


class Replay:
    """A cassette's requests, made the simulator's: the recorded subscription and group become ours."""

    def __init__(self, clients: Clients, sim: ArmSimulator, cassette: str) -> None:
        self.clients, self.sim = clients, sim
        self.recorded = interactions(cassette)
        groups = {m.group(1) for i in self.recorded for m in [_GROUP.search(i.url)] if m is not None}
        self.group = min(groups, key=len)  # its "...notfound" variant is the same name and more

    def ours(self, text: str) -> str:
        text = text.replace(f"/subscriptions/{RECORDED_SUB}", f"/subscriptions/{SUB}")
        return re.sub(re.escape(self.group), RG, text, flags=re.IGNORECASE)

    def at(self, index: int, method: str, path_end: str) -> Interaction:
        """The recorded interaction `index`, checked to be the request the test means."""
        interaction = self.recorded[index]
        assert interaction.index == index and interaction.method == method, interaction
        assert interaction.path.lower().endswith(path_end.lower()), interaction.path
        return interaction

    def send(self, interaction: Interaction, **options: Any) -> Answer:
        """The recorded request, sent to the simulator through the SDK's pipeline."""
        split = urlsplit(interaction.url)
        target = self.ours(split.path) + (f"?{split.query}" if split.query else "")
        headers = {k: v for k, v in interaction.request_headers.items() if k in ("if-match", "if-none-match")}
        body = self.ours(interaction.request_body) if interaction.request_body else None
        request = HttpRequest(
            interaction.method,
            target,
            content=body,
            headers={**headers, **({"Content-Type": "application/json"} if body else {})},
        )
        response = self.clients.network.send_request(request, **options)
        text = response.text()
        return Answer(
            response.status_code,
            {name.lower(): value for name, value in response.headers.items()},
            json.loads(text) if text else None,
        )

    def until(self, interaction: Interaction) -> None:
        """Replay every recorded request before `interaction` (answers not compared), each
        long-running write waited for; resource groups and status polls are left out (the
        simulator has no resource groups; it polls its own operations)."""
        for earlier in self.recorded[: interaction.index]:
            path = urlsplit(earlier.url).path.lower()
            if "/providers/" not in path or "/locations/" in path or "/operationresults/" in path:
                continue
            self.send(earlier, retry_total=0)
            self.sim.wait_idle(10)

    def poll(self, answer: Answer) -> Answer:
        """The answer's status URL, polled once the operation is done."""
        self.sim.wait_idle(10)
        status_url = answer.headers["azure-asyncoperation"]
        response = self.clients.network.send_request(HttpRequest("GET", status_url))
        headers = {name.lower(): value for name, value in response.headers.items()}
        return Answer(response.status_code, headers, response.json())

    def recorded_poll(self, interaction: Interaction) -> Interaction:
        """The recorded poll of `interaction`'s status URL (the first request to it after it)."""
        url = interaction.header_values["azure-asyncoperation"]
        return next(i for i in self.recorded[interaction.index + 1 :] if i.url == url)


def status_url_shape(url: str) -> tuple[str, str, str, bool]:
    """(namespace, region, operations or operationResults, monitor=true?) of a status URL; fails on
    any other shape."""
    split = urlsplit(url)
    match = _STATUS_PATH.match(split.path)
    assert match is not None, f"not an operation status URL: {url}"
    query = parse_qs(split.query)
    assert query.get("api-version"), url
    return match["ns"], match["region"], match["kind"], query.get("monitor") == ["true"]


def assert_answered_alike(
    replay: Replay, recorded: Interaction, answer: Answer, statuses: tuple[int, ...] = ()
) -> None:
    """The simulator's answer has the recorded one's shape (see the module docstring); `statuses`:
    the status codes Azure answered this request with in other recordings, any of which will do."""
    expected = recorded_answer(recorded)
    shape = {**answer.shape, "status": expected.status} if answer.status in statuses else answer.shape
    assert shape == expected.shape, f"recorded {expected.shape}, simulated {answer.shape}"
    assert "retry-after" not in answer.headers
    assert answer.error_code == expected.error_code
    # The names ARM sent are sent (the simulator adds the caller's own bucket: sim/limits.py), and
    # none where ARM sent none (its gateway's 404 for a missing resource).
    assert expected.rate_limit_headers <= answer.rate_limit_headers, (expected.headers, answer.headers)
    assert bool(expected.rate_limit_headers) == bool(answer.rate_limit_headers), answer.headers
    for name in ("azure-asyncoperation", "location"):
        if name in expected.headers:
            assert status_url_shape(answer.headers[name]) == status_url_shape(expected.headers[name])
    if isinstance(expected.body, dict) and "value" in expected.body:
        assert isinstance(answer.body, dict)
        assert len(answer.body["value"]) == len(expected.body["value"])
        assert ("nextLink" in answer.body) == ("nextLink" in expected.body)
    if "azure-asyncoperation" in expected.headers:
        polled, recorded_poll = replay.poll(answer), replay.recorded_poll(recorded)
        assert polled.status == recorded_poll.status == 200
        assert polled.body["status"] == recorded_poll.body["status"] == "Succeeded"
        # Network answers its status alone; Compute names the operation and its times too.
        assert set(polled.body) == set(recorded_poll.body)
        assert "retry-after" not in polled.headers


@dataclass(frozen=True)
class Recorded:
    """Where an operation is recorded: cassette, interaction id, and what that request is."""

    cassette: str
    index: int
    method: str
    path_end: str
    statuses: tuple[int, ...] = ()  # other status codes recorded for the same request elsewhere


NIC = "Microsoft.Network/networkInterfaces/testResource"
PIP = "Microsoft.Network/publicIPAddresses/testResource"
VMS = "Microsoft.Compute/virtualMachines"
VM = f"{VMS}/testResource"
VMSS = "Microsoft.Compute/virtualMachineScaleSets/testResource"
INSTANCE = "Microsoft.Compute/virtualMachineScaleSets/testParentResource/virtualMachines/0"

OPERATIONS = {
    "nic create": Recorded("interfaceclient.yaml", 4, "PUT", NIC),
    "nic update": Recorded("interfaceclient.yaml", 7, "PUT", NIC),
    "nic get": Recorded("interfaceclient.yaml", 5, "GET", NIC),
    "nic get, missing": Recorded("interfaceclient.yaml", 6, "GET", f"{NIC}notfound"),
    "nic list": Recorded("interfaceclient.yaml", 8, "GET", "Microsoft.Network/networkInterfaces"),
    # A NIC DELETE is recorded answered 200 (a NIC never attached) and 202 (a deleted VM's NIC), both
    # with an operation to poll; the simulator answers 202, as for every other DELETE.
    "nic delete": Recorded("interfaceclient.yaml", 10, "DELETE", NIC, statuses=(202,)),
    "nic delete of a vm's nic": Recorded(
        "virtualmachineclient.yaml", 19, "DELETE", "Microsoft.Network/networkInterfaces/nic1", (200,)
    ),
    "public ip create": Recorded("publicipaddressclient.yaml", 1, "PUT", PIP),
    "public ip get": Recorded("publicipaddressclient.yaml", 3, "GET", PIP),
    "public ip get, missing": Recorded("publicipaddressclient.yaml", 5, "GET", f"{PIP}notfound"),
    "public ip put, stale if-match": Recorded("publicipaddressclient.yaml", 8, "PUT", PIP),
    "public ip list": Recorded("publicipaddressclient.yaml", 9, "GET", "Microsoft.Network/publicIPAddresses"),
    "public ip delete": Recorded("publicipaddressclient.yaml", 11, "DELETE", PIP),
    "vm get": Recorded("virtualmachineclient.yaml", 11, "GET", VM),
    "vm list by scale set": Recorded(
        "virtualmachineclient.yaml", 8, "GET", "Microsoft.Compute/virtualMachines"
    ),
    "vm list": Recorded("virtualmachineclient.yaml", 15, "GET", VMS),
    "vm delete": Recorded("virtualmachineclient.yaml", 17, "DELETE", VM),
    "scale set create": Recorded("virtualmachinescalesetclient.yaml", 5, "PUT", VMSS),
    "scale set get, missing": Recorded("virtualmachinescalesetclient.yaml", 4, "GET", VMSS),
    "scale set get": Recorded("virtualmachinescalesetclient.yaml", 7, "GET", VMSS),
    "scale set update": Recorded("virtualmachinescalesetclient.yaml", 8, "PUT", VMSS),
    "scale set put, stale if-match": Recorded("virtualmachinescalesetclient.yaml", 11, "PUT", VMSS),
    "scale set list": Recorded(
        "virtualmachinescalesetclient.yaml", 12, "GET", "Microsoft.Compute/virtualMachineScaleSets"
    ),
    "scale set vm get": Recorded("virtualmachinescalesetvmclient.yaml", 12, "GET", INSTANCE),
    "scale set vm get, not an instance id": Recorded(
        "virtualmachinescalesetvmclient.yaml", 15, "GET", f"{INSTANCE}notfound"
    ),
    "scale set vm list": Recorded(
        "virtualmachinescalesetvmclient.yaml", 8, "GET", "testParentResource/virtualMachines"
    ),
    "scale set vm delete": Recorded("virtualmachinescalesetvmclient.yaml", 16, "DELETE", INSTANCE),
}


@pytest.mark.parametrize("operation", list(OPERATIONS), ids=list(OPERATIONS))
def test_the_simulator_answers_as_azure_did(sim: ArmSimulator, clients: Clients, operation: str) -> None:
    where = OPERATIONS[operation]
    replay = Replay(clients, sim, where.cassette)
    recorded = replay.at(where.index, where.method, where.path_end)
    replay.until(recorded)
    assert_answered_alike(replay, recorded, replay.send(recorded), where.statuses)


def test_a_nic_update_completes_in_its_request_as_recorded(sim: ArmSimulator, clients: Clients) -> None:
    # nic_update_long_running=False, the default: nothing is left to complete after the answer.
    assert not sim.settings.nic_update_long_running
    replay = Replay(clients, sim, "interfaceclient.yaml")
    update = replay.at(7, "PUT", NIC)
    replay.until(update)
    with sim.operations_held():  # no operation could complete meanwhile, however slow the machine
        answer = replay.send(update)
        nic = sim.get_resource(f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/{NIC}")
    assert answer.shape == recorded_answer(update).shape
    assert (answer.status, answer.provisioning_state) == (200, "Succeeded")
    assert "azure-asyncoperation" not in answer.headers and "location" not in answer.headers
    assert nic is not None and nic["properties"]["provisioningState"] == "Succeeded"


def test_nic_update_long_running_answers_updating_with_an_operation() -> None:
    options = {**TEST_TIMINGS, "nic_update_long_running": True}
    with owned(ArmSimulator(**CONVENIENT, **options)) as sim:
        assert sim.settings.nic_update_long_running
        replay = Replay(make_clients(sim), sim, "interfaceclient.yaml")
        create, update = replay.at(4, "PUT", NIC), replay.at(7, "PUT", NIC)
        replay.until(create)
        created = replay.send(create)
        assert created.shape == recorded_answer(create).shape  # a create stays as recorded: 201 Succeeded
        with sim.operations_held():  # the operation cannot complete meanwhile, however slow the machine
            updated = replay.send(update)
            assert (updated.status, updated.provisioning_state) == (200, "Updating")
            assert "retry-after" not in updated.headers and "location" not in updated.headers
            url = updated.headers["azure-asyncoperation"]
            assert status_url_shape(url) == ("Microsoft.Network", "eastus", "operations", False)
            running = replay.clients.network.send_request(HttpRequest("GET", url)).json()
            assert running == {"status": "InProgress"}
        done = replay.poll(updated)
        assert done.body == {"status": "Succeeded"}
        nic = sim.get_resource(f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/{NIC}")
        assert nic is not None and nic["properties"]["provisioningState"] == "Succeeded"


def test_a_scale_set_patch_is_answered_as_the_recorded_update(sim: ArmSimulator, clients: Clients) -> None:
    # The product changes a set with PATCH, which is not recorded; the simulator answers it as the
    # recorded PUT of the same set (200 Updating, an operation to poll), as for any update.
    replay = Replay(clients, sim, "virtualmachinescalesetclient.yaml")
    update = replay.at(8, "PUT", VMSS)
    replay.until(update)
    patch = replace(update, method="PATCH", request_body=json.dumps({"sku": {"capacity": 1}}))
    assert_answered_alike(replay, update, replay.send(patch))
