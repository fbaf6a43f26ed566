"""A NIC update is answered synchronously in recorded ARM traffic (200 Succeeded, nothing to
poll), but Azure may make it long-running (200 Updating with Azure-AsyncOperation, for a NIC of a
running VM). The product strips under both shapes, each detach verified from ARM's own answer;
counted from the simulator's log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from estate import Estate, estate_on

from localazure.stack import LocalAzure
from remediation.credentials import LoopbackCredential
from remediation.model import RecordKind

STRIP = {"remediation.mode": "strip"}
NIC = "Microsoft.Network/networkInterfaces"


@pytest.fixture(params=[False, True], ids=["synchronous", "long-running"])
def shaped_estate(
    request: pytest.FixtureRequest, local_azure: LocalAzure, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Estate]:
    settings = {"RECHECK_DELAYS_SECONDS": "0,0,0", "ARM_POLL_INTERVAL_SECONDS": "0.05"}
    options = {"provision_delay_s": 0.2, "lro_duration_s": 0.05, "nic_update_long_running": request.param}
    with estate_on(local_azure, settings, **options) as (estate, env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield estate


def test_a_nic_update_of_either_shape_is_stripped_and_verified(shaped_estate: Estate) -> None:
    estate = shaped_estate
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 3)
    before = len(estate.sim.requests())
    for event in estate.events():
        estate.deliver(event)

    assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))
    assert estate.public_ip_count() == 0
    mine = [r for r in estate.sim.requests()[before:] if r.principal == LoopbackCredential.APP_ID]
    polls = [r for r in mine if "/operations/" in r.path and "Microsoft.Network" in r.path]
    long_running = bool(estate.sim.settings.nic_update_long_running)
    assert bool(polls) is long_running, "polled exactly when ARM made the update long-running"
    verified = [r for r in estate.audit() if r.kind is RecordKind.VERIFIED]
    assert len(verified) == 3
    assert len(estate.successful("PUT", NIC, before)) == 3
