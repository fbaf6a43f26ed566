"""A scale-out creates its instances one at a time over `provision_delay_s`, the set Updating
until the last exists. The clock is moved by the test (`advance_clock`), so each step is seen
exactly, whatever the machine's speed: 100 simulated seconds for 4 instances puts one every 20."""

from __future__ import annotations

from typing import Any

from sim_helpers import CONVENIENT, RG, flex_body, make_clients, owned, rid, uniform_body

from sim import ArmSimulator

VMSS = "Microsoft.Compute/virtualMachineScaleSets"
VM = "Microsoft.Compute/virtualMachines"
NIC = "Microsoft.Network/networkInterfaces"
PIP = "Microsoft.Network/publicIPAddresses"
SLOW: dict[str, Any] = {"provision_delay_s": 100.0, "lro_duration_s": 1.0, **CONVENIENT}


def _of_type(sim: ArmSimulator, resource_type: str) -> list[dict[str, Any]]:
    return [doc for doc in sim.export()["value"] if doc["type"].lower() == resource_type.lower()]


def _state(sim: ArmSimulator, name: str) -> str:
    doc = sim.get_resource(rid(VMSS, name))
    assert doc is not None
    return str(doc["properties"]["provisioningState"])


def test_a_flexible_scale_out_grows_one_instance_at_a_time() -> None:
    with owned(ArmSimulator(**SLOW)) as sim:
        clients = make_clients(sim)
        clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "flex", flex_body(0)).result()
        sim.advance_clock(5)
        poller = clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "flex", flex_body(4))
        grown = []
        for _ in range(4):
            sim.advance_clock(20)  # steps at 20, 40, 60 and 80 of 100
            vms, nics, pips = (_of_type(sim, t) for t in (VM, NIC, PIP))
            grown.append((len(vms), len(nics), len(pips), _state(sim, "flex")))
        assert grown == [(n, n, n, "Updating") for n in (1, 2, 3, 4)]
        # Each VM came with its NIC, which names the VM, before the set's operation completed.
        vm_ids = {vm["id"] for vm in _of_type(sim, VM)}
        assert {nic["properties"]["virtualMachine"]["id"] for nic in _of_type(sim, NIC)} == vm_ids
        sim.advance_clock(20)
        assert poller.result().provisioning_state == "Succeeded"
        assert len(_of_type(sim, VM)) == 4


def test_a_uniform_scale_out_grows_one_instance_at_a_time() -> None:
    with owned(ArmSimulator(**SLOW)) as sim:
        clients = make_clients(sim)
        poller = clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "uni", uniform_body(4))
        sim.advance_clock(50)  # past the steps at 20 and 40
        instances = _of_type(sim, f"{VMSS}/virtualMachines")
        assert [doc["instanceId"] for doc in instances] == ["0", "1"]
        nic = sim.get_resource(f"{rid(VMSS, 'uni')}/virtualMachines/1/networkInterfaces/nic")
        assert nic is not None and _state(sim, "uni") == "Creating"
        sim.advance_clock(50)
        assert poller.result().provisioning_state == "Succeeded"
        assert len(_of_type(sim, f"{VMSS}/virtualMachines")) == 4


def test_held_operations_create_nothing_then_everything() -> None:
    with owned(ArmSimulator(**SLOW)) as sim:
        clients = make_clients(sim)
        with sim.operations_held():
            poller = clients.compute.virtual_machine_scale_sets.begin_create_or_update(
                RG, "flex", flex_body(3)
            )
            sim.advance_clock(200)
            assert _of_type(sim, VM) == [] and _state(sim, "flex") == "Creating"
        sim.advance_clock(0)
        assert poller.result().provisioning_state == "Succeeded"
        assert len(_of_type(sim, VM)) == 3


def test_a_failed_scale_out_keeps_the_instances_it_made() -> None:
    with owned(ArmSimulator(**SLOW)) as sim:
        clients = make_clients(sim)
        clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "flex", flex_body(0)).result()
        sim.advance_clock(5)
        sim.fail_next_operation(rid(VMSS, "flex"))
        clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "flex", flex_body(3))
        sim.advance_clock(200)
        assert _state(sim, "flex") == "Failed"
        assert len(_of_type(sim, VM)) == 3  # made along the way, before the operation failed
