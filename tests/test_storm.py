"""A 200-instance storm against an ARM that throttles as real ARM does (token buckets per
principal: writes 200 burst / 10 per s, deletes the same, reads 250 / 25 per s; run 2.5 times
faster here): every public IP on the set's own instances is gone at the end, and the remediator
honoured every 429's Retry-After instead of failing.

Whether a run outpaces the buckets depends on the machine, so the throttling it meets is set, not
raced: the remediator's write and delete buckets answer their next 40 requests 429 whatever the
clock says, then refill as usual."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from estate import Estate

from localazure.stack import LocalAzure
from remediation.credentials import LoopbackCredential
from sim import ArmSimulator

SIZE = 200
THROTTLED = 40  # answers 429 per bucket, set in the simulator


@pytest.fixture
def throttled_estate(local_azure: LocalAzure, monkeypatch: pytest.MonkeyPatch) -> Iterator[Estate]:
    with ArmSimulator(
        throttling=True, time_scale=2.5, provision_delay_s=1.0, lro_duration_s=0.2, page_size=50
    ) as arm:
        local = LocalAzure.__new__(LocalAzure)  # the session's Azurite with this throttling simulator
        local.azurite, local.arm = local_azure.azurite, arm
        unique = uuid.uuid4().hex[:12]
        environment = local.environment(
            audit_table=f"storm{unique}",
            recheck_queue=f"storm-{unique}",
            archive_container=f"storm-{unique}",
            lock_container=f"storm-locks-{unique}",
        )
        environment["ARM_RETRY_TOTAL"] = "10"
        for key, value in environment.items():
            monkeypatch.setenv(key, value)
        with Estate(local, environment) as estate:
            yield estate


def test_a_200_instance_storm_under_throttling_ends_with_no_public_ip(throttled_estate: Estate) -> None:
    estate = throttled_estate
    estate.create_set("big", tags={"remediation.mode": "strip"})
    estate.scale("big", SIZE)
    events = estate.events()
    remediator = LoopbackCredential.APP_ID
    estate.sim.throttle_next(remediator, "writes", THROTTLED)
    estate.sim.throttle_next(remediator, "deletes", THROTTLED)

    for _attempt in range(5):  # Event Grid redelivers what failed
        failed = []
        for event in events:
            try:
                estate.deliver(event)
            except Exception:  # noqa: BLE001 - the host answers 500; Event Grid retries
                failed.append(event)
        events = failed
        if not events:
            break

    vms = estate.vms("big")
    assert len(vms) == SIZE
    assert all(estate.public_ips_of(vm) == [] for vm in vms)
    throttled = Counter(
        r.method for r in estate.sim.requests() if r.status == 429 and r.principal == remediator
    )
    assert throttled["PUT"] >= THROTTLED and throttled["DELETE"] >= THROTTLED, (
        "the storm met ARM's throttling"
    )
