"""Eventual consistency by default: lists and Resource Graph lag the writes, reads by id do not,
and a write's event is published when ARM accepts it (before the work is done).

Every test here moves the simulator's clock itself (`advance_clock`) or holds its operations, so
what a test sees never depends on how fast the machine is: a lag of 60 simulated seconds cannot
pass while a test creates and lists, and one `advance_clock(60)` passes it at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.rest import HttpRequest
from sim_helpers import (
    RG,
    SUB,
    Clients,
    flex_body,
    make_clients,
    nic_body,
    owned,
    pip_body,
    rid,
    uniform_body,
)

from sim import ArmSimulator
from sim.lagging_view import LONG_AGO, LaggingView

VMSS = "Microsoft.Compute/virtualMachineScaleSets"
PIP = "Microsoft.Network/publicIPAddresses"
LAG = 60.0  # simulated seconds: far longer than any test takes to create and list
GRAPH_LAG = 600.0
TIMINGS: dict[str, Any] = {"provision_delay_s": 0.1, "lro_duration_s": 0.02}


@pytest.fixture(scope="module")
def lagging() -> Iterator[ArmSimulator]:
    """A simulator whose lists lag by a minute and Resource Graph by ten, events at acceptance."""
    with owned(ArmSimulator(**TIMINGS, list_lag_s=LAG, graph_lag_s=GRAPH_LAG)) as simulator:
        yield simulator


@pytest.fixture
def arm(lagging: ArmSimulator) -> Iterator[ArmSimulator]:
    lagging.reset()
    yield lagging
    lagging.wait_idle(5)


@pytest.fixture
def lag_clients(lagging: ArmSimulator) -> Clients:
    return make_clients(lagging)


def _pips(clients: Clients) -> dict[str, Any]:
    return {str(pip.name): pip for pip in clients.network.public_ip_addresses.list(RG)}


def test_adversarial_defaults() -> None:
    simulator = ArmSimulator()
    settings = simulator.settings
    assert (settings.list_lag_s, settings.graph_lag_s, settings.events_at) == (1.0, 5.0, "acceptance")
    assert (simulator.list_lag_s, simulator.graph_lag_s, simulator.events_at) == (1.0, 5.0, "acceptance")
    with pytest.raises(ValueError, match="events_at"):
        ArmSimulator(events_at="whenever")
    with pytest.raises(ValueError, match="must not be negative"):
        ArmSimulator(list_lag_s=-1)


def test_a_list_lags_creation_update_and_deletion_a_get_does_not(
    arm: ArmSimulator, lag_clients: Clients
) -> None:
    network = lag_clients.network
    network.public_ip_addresses.begin_create_or_update(RG, "pip", pip_body()).result()
    assert network.public_ip_addresses.get(RG, "pip").name == "pip"  # by id: current
    assert _pips(lag_clients) == {} and list(network.public_ip_addresses.list_all()) == []
    arm.advance_clock(LAG)
    assert list(_pips(lag_clients)) == ["pip"]

    tagged = pip_body()
    tagged.tags = {"v": "2"}
    network.public_ip_addresses.begin_create_or_update(RG, "pip", tagged).result()
    assert network.public_ip_addresses.get(RG, "pip").tags == {"v": "2"}
    assert not _pips(lag_clients)["pip"].tags  # listed as it was
    arm.advance_clock(LAG)
    assert _pips(lag_clients)["pip"].tags == {"v": "2"}

    network.public_ip_addresses.begin_delete(RG, "pip").result()
    assert arm.get_resource(rid(PIP, "pip")) is None
    assert _pips(lag_clients)["pip"].tags == {"v": "2"}  # a ghost, still listed
    arm.advance_clock(LAG)
    assert _pips(lag_clients) == {}


def test_the_flexible_sets_vm_list_and_the_nic_list_lag(arm: ArmSimulator, lag_clients: Clients) -> None:
    compute = lag_clients.compute
    compute.virtual_machine_scale_sets.begin_create_or_update(RG, "flex", flex_body(2)).result()
    set_id = rid(VMSS, "flex")
    members = f"'virtualMachineScaleSet/id' eq '{set_id}'"
    vms = [vm for vm in arm.export()["value"] if vm["type"] == "Microsoft.Compute/virtualMachines"]
    assert len(vms) == 2
    assert compute.virtual_machines.get(RG, vms[0]["name"]).name == vms[0]["name"]
    assert list(compute.virtual_machines.list(RG, filter=members)) == []
    assert list(lag_clients.network.network_interfaces.list(RG)) == []
    arm.advance_clock(LAG)
    assert len(list(compute.virtual_machines.list(RG, filter=members))) == 2
    assert len(list(lag_clients.network.network_interfaces.list(RG))) == 2
    assert [s.name for s in compute.virtual_machine_scale_sets.list(RG)] == ["flex"]


def test_a_uniform_sets_instances_and_their_nic_views_lag(arm: ArmSimulator, lag_clients: Clients) -> None:
    compute = lag_clients.compute
    compute.virtual_machine_scale_sets.begin_create_or_update(RG, "uni", uniform_body(2)).result()
    assert compute.virtual_machine_scale_set_vms.get(RG, "uni", "1").instance_id == "1"
    assert list(compute.virtual_machine_scale_set_vms.list(RG, "uni")) == []
    views = lag_clients.network.network_interfaces
    assert list(views.list_virtual_machine_scale_set_network_interfaces(RG, "uni")) == []
    arm.advance_clock(LAG)
    assert [vm.instance_id for vm in compute.virtual_machine_scale_set_vms.list(RG, "uni")] == ["0", "1"]
    assert len(list(views.list_virtual_machine_scale_set_network_interfaces(RG, "uni"))) == 2


def test_resource_graph_lags_by_its_own_lag(arm: ArmSimulator, lag_clients: Clients) -> None:
    def rows() -> list[str]:
        body = {
            "subscriptions": [SUB],
            "query": "resources | where type =~ 'microsoft.compute/virtualmachinescalesets'",
        }
        request = HttpRequest(
            "POST", "/providers/Microsoft.ResourceGraph/resources?api-version=2022-10-01", json=body
        )
        answer = lag_clients.compute.send_request(request)
        assert answer.status_code == 200
        return [row["name"] for row in answer.json()["data"]]

    lag_clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "flex", flex_body(0)).result()
    arm.advance_clock(LAG)
    assert [s.name for s in lag_clients.compute.virtual_machine_scale_sets.list(RG)] == ["flex"]
    assert rows() == []  # the list caught up; Resource Graph's index has not
    arm.advance_clock(GRAPH_LAG - LAG)
    assert rows() == ["flex"]


def test_seeded_resources_are_listed_at_once(arm: ArmSimulator, lag_clients: Clients) -> None:
    arm.seed({"id": rid(PIP, "seeded"), "location": "westeurope", "properties": {}})
    assert list(_pips(lag_clients)) == ["seeded"]


def test_no_lag_is_the_opt_out() -> None:
    with owned(ArmSimulator(**TIMINGS, list_lag_s=0, graph_lag_s=0)) as current:
        clients = make_clients(current)
        clients.network.public_ip_addresses.begin_create_or_update(RG, "pip", pip_body()).result()
        assert list(_pips(clients)) == ["pip"]
        clients.network.public_ip_addresses.begin_delete(RG, "pip").result()
        assert _pips(clients) == {}


def test_the_history_keeps_only_what_a_view_can_still_show() -> None:
    view = LaggingView()
    view.record("a", LONG_AGO, {"v": 0}, seq=1)
    view.record("a", 10.0, {"v": 1}, seq=1)
    view.record("a", 20.0, {"v": 2}, seq=1)
    view.record("b", 15.0, {"v": 0}, seq=2)
    view.record("b", 25.0, None, seq=2)
    assert dict(view.as_of(5.0)) == {"a": {"v": 0}}
    assert dict(view.as_of(16.0)) == {"a": {"v": 1}, "b": {"v": 0}}
    view.record("a", 21.0, {"v": 2}, seq=1)  # unchanged: no new version
    view.prune(horizon=22.0)  # views at 22 or later: a's version 2 and b's deletion are enough
    assert dict(view.as_of(22.0)) == {"a": {"v": 2}, "b": {"v": 0}}
    view.prune(horizon=30.0)
    assert dict(view.as_of(30.0)) == {"a": {"v": 2}} and len(view) == 1


def test_advance_clock_completes_what_is_due() -> None:
    with owned(ArmSimulator(provision_delay_s=3600.0, lro_duration_s=3600.0, list_lag_s=0)) as slow:
        clients = make_clients(slow)
        poller = clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "flex", flex_body(1))
        assert _state(slow, rid(VMSS, "flex")) == "Creating"
        before = slow.now()
        slow.advance_clock(3600.0)
        assert slow.now() - before >= 3600.0
        assert poller.result().provisioning_state == "Succeeded"
        with pytest.raises(ValueError):
            slow.advance_clock(-1)


# ---------------------------------------------------------------------------------- events


def _state(simulator: ArmSimulator, resource_id: str) -> str:
    doc = simulator.get_resource(resource_id)
    assert doc is not None
    return str(doc["properties"]["provisioningState"])


def _record(simulator: ArmSimulator) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    simulator.add_event_sink(seen.append)
    return seen


def test_a_scale_outs_event_arrives_before_its_instances_exist(
    arm: ArmSimulator, lag_clients: Clients
) -> None:
    seen = _record(arm)
    with arm.operations_held():  # nothing completes, however slow the machine
        poller = lag_clients.compute.virtual_machine_scale_sets.begin_create_or_update(
            RG, "flex", flex_body(3)
        )
        assert [e["data"]["operationName"] for e in seen] == [f"{VMSS}/write"]
        assert _state(arm, rid(VMSS, "flex")) == "Creating"
        assert [d for d in arm.export()["value"] if d["type"] != VMSS] == []
    poller.result()
    arm.wait_idle(5)
    assert len(seen) == 1  # not again at completion


def test_a_delete_and_a_failed_operation_are_published_at_acceptance(
    arm: ArmSimulator, lag_clients: Clients
) -> None:
    seen = _record(arm)
    network = lag_clients.network
    network.public_ip_addresses.begin_create_or_update(RG, "pip", pip_body()).result()
    arm.fail_next_operation(rid(PIP, "pip"))
    with arm.operations_held():
        poller = network.public_ip_addresses.begin_create_or_update(RG, "pip", pip_body())
        kinds = [e["eventType"].rsplit(".", 1)[1] for e in seen]
        assert kinds == ["ResourceWriteSuccess", "ResourceWriteSuccess"]
        assert "httpRequest" in seen[1]["data"]  # an update's event carries the request
    with pytest.raises(Exception, match="Injected failure"):
        poller.result()
    with arm.operations_held():
        network.public_ip_addresses.begin_delete(RG, "pip")
        assert seen[-1]["eventType"] == "Microsoft.Resources.ResourceDeleteSuccess"
        assert arm.get_resource(rid(PIP, "pip")) is not None  # still being deleted


def test_events_at_completion_is_the_opt_out() -> None:
    with owned(ArmSimulator(**TIMINGS, events_at="completion")) as late:
        seen = _record(late)
        clients = make_clients(late)
        with late.operations_held():
            poller = clients.compute.virtual_machine_scale_sets.begin_create_or_update(
                RG, "flex", flex_body(1)
            )
            assert seen == []
        poller.result()
        late.wait_idle(5)
        assert [e["data"]["operationName"] for e in seen] == [f"{VMSS}/write"]


def test_a_write_completed_in_the_request_is_published_once(arm: ArmSimulator, lag_clients: Clients) -> None:
    seen = _record(arm)
    network = lag_clients.network
    network.public_ip_addresses.begin_create_or_update(RG, "pip", pip_body()).result()
    network.network_interfaces.begin_create_or_update(RG, "nic", nic_body(rid(PIP, "pip"))).result()
    network.network_interfaces.begin_create_or_update(RG, "nic", nic_body()).result()  # synchronous
    arm.wait_idle(5)
    nic_events = [e for e in seen if e["subject"].endswith("/nic")]
    assert len(nic_events) == 2
