"""Specification of looks under lists that lag the writes (the simulator's ``list_lag_s``, here 5 s
of its clock, which only the test moves): what a list does not show yet is looked for again or
read by id, never taken for absent.

- A scale-out whose instances no list shows yet is a set still growing, Uniform or Flexible: the
  look says so and queues the next, which strips them once they are listed.
- A NIC the list still shows with its public IP, after a look stripped it, is read by id before
  any write is planned: no second PUT, no 412.
- A VM about to be judged for a write is read by id: an exemption tagged since the list was
  current is honoured.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import arm_docs as docs
import pytest
from estate import Estate, estate_on

from localazure.stack import LocalAzure
from remediation.model import RecordKind

STRIP = {"remediation.mode": "strip"}
NIC = "Microsoft.Network/networkInterfaces"
VMSS = "Microsoft.Compute/virtualMachineScaleSets"
LAG_S = 5.0


@pytest.fixture
def lagging(local_azure: LocalAzure, monkeypatch: pytest.MonkeyPatch) -> Iterator[Estate]:
    settings = {"RECHECK_DELAYS_SECONDS": "0,0,0", "WATCH_INTERVAL_SECONDS": "0"}
    with estate_on(local_azure, settings, list_lag_s=LAG_S, provision_delay_s=0.2) as (estate, env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield estate


def decisions(estate: Estate) -> list[str]:
    return [r.reason for r in estate.audit() if r.kind is RecordKind.DECISION]


@pytest.mark.parametrize("uniform", [False, True], ids=["flexible", "uniform"])
def test_instances_no_list_shows_yet_keep_the_set_watched_until_they_are_stripped(
    lagging: Estate, uniform: bool
) -> None:
    estate = lagging
    if uniform:
        estate.create_uniform_set("web", tags=STRIP)
    else:
        estate.create_set("web", tags=STRIP)
    estate.sim.advance_clock(LAG_S)  # the empty set is listed
    estate.scale("web", 3)  # done: the set Succeeded, its 3 instances exist, no list shows them
    (event,) = estate.events()[-1:]

    estate.take_in(event)
    assert estate.pump_once() == 1
    assert estate.successful("PUT", NIC) == []
    # A Uniform set's model loses its public IP at once, instances listed or not.
    assert estate.successful("PATCH", VMSS) == ([docs.set_id("web")] if uniform else [])
    assert any(reason.startswith("capacity 3 but 0 instances exist") for reason in decisions(estate))

    estate.sim.advance_clock(LAG_S)  # the lists show them now
    estate.pump_rechecks()

    if uniform:
        assert estate.uniform_public_ips("web") == {"0": [], "1": [], "2": []}
    else:
        assert len(estate.vms("web")) == 3
        assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))
        assert len(estate.successful("PUT", NIC)) == 3, "one detach per instance"


def test_a_nic_the_list_still_shows_with_its_public_ip_is_read_by_id_and_not_written_again(
    lagging: Estate,
) -> None:
    estate = lagging
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 2)
    estate.sim.advance_clock(LAG_S)  # listed
    for event in estate.events():
        estate.take_in(event)
    assert estate.pump_once() >= 1
    assert len(estate.successful("PUT", NIC)) == 2
    statuses = len(estate.sim.requests())

    # Another look within the lag: the NIC list still shows both NICs with their public IPs.
    estate.take_in(docs.write_event(docs.set_id("web")))
    assert estate.pump_once() == 1

    later = estate.sim.requests()[statuses:]
    assert [r for r in later if r.method == "PUT"] == [], "nothing written again"
    assert [r for r in later if r.status == 412] == []
    nic_reads = [r for r in later if r.method == "GET" and r.resource_type.lower() == NIC.lower()]
    assert len(nic_reads) >= 2, "each NIC the list shows carrying a public IP was read by id"


def test_an_exemption_tagged_since_the_list_was_current_is_honoured(lagging: Estate) -> None:
    """The VM list still shows the VM without the tag: the VM is read by id before it is judged."""
    estate = lagging
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 2)
    estate.sim.advance_clock(LAG_S)  # both listed, untagged
    exempt, other = sorted(vm["id"] for vm in estate.vms("web"))
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    estate.tag(exempt, {"remediation.exempt-until": tomorrow})  # the list shows it untagged for 5 s
    estate.events()

    estate.take_in(docs.write_event(docs.set_id("web")))
    assert estate.pump_once() == 1

    by_id = {vm["id"]: estate.public_ips_of(vm) for vm in estate.vms("web")}
    assert len(by_id[exempt]) == 1, "exempt: untouched, whatever the list said"
    assert by_id[other] == []
    assert len(estate.successful("PUT", NIC)) == 1


def test_a_strips_reads_by_id_run_beside_the_other_strips_writes(lagging: Estate) -> None:
    """Each finding reads its VM and NIC by id just before its own detach, not every finding's
    before the first: with more findings than run at once (16), a NIC is written before the last
    VM is read. (All reads first cost a storm of 500 its first 35 s: 1,000 reads at ARM's read
    bucket before any write.)"""
    estate = lagging
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 20)
    estate.sim.advance_clock(LAG_S)  # all 20 listed
    estate.events()
    before = len(estate.sim.requests())

    estate.take_in(docs.write_event(docs.set_id("web")))
    assert estate.pump_once() == 1

    log = estate.sim.requests()[before:]
    vm_reads = [i for i, r in enumerate(log) if r.method == "GET" and "/virtualmachines/" in r.path.lower()]
    puts = [i for i, r in enumerate(log) if r.method == "PUT" and r.status == 200]
    assert len(puts) == 20 and len(vm_reads) == 20, "one read of each VM by id, one detach each"
    assert puts[0] < vm_reads[-1], "the first detach went before the last VM was read"
    assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))
