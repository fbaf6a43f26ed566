"""A 500-instance storm delivered by Event Grid to three host processes, against an ARM that
throttles as real ARM does (token buckets per principal: writes 200 burst / 10 per s, deletes the
same, reads 250 / 25 per s; run 2.5 times faster here): every delivery is answered within Event
Grid's deadline (none delivered again because of it), each NIC is put once and each public IP
deleted once, and no public IP is left. Counted from the simulator's log and the player's record.

Whether a run outpaces the buckets depends on the machine, so the throttling it meets is set, not
raced: the remediator's write and delete buckets answer their next 40 requests 429 whatever the
clock says, then refill as usual. Beyond those, the remediator's pacing of ARM's budgets meets a
429 only on a request already on its way when the bucket emptied: at most one per request a
reconcile has in flight (``MAX_PARALLEL_FINDINGS``; one set, so one reconcile of it at a time,
on whichever host holds its lease) on each host it passes to (each host's pacer learns of the
empty bucket on its own), however slow the machine (a loaded one widens the moment between a
request's turn and its arrival); without pacing, hundreds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from estate import Estate, estate_on
from hosts import NIC, PUBLIC_IP, play, until, work_queue_empty

from localazure.eventgrid import DEADLINE_S
from localazure.functions_host import HostPool
from localazure.stack import LocalAzure
from remediation.act import MAX_PARALLEL_FINDINGS
from remediation.credentials import LoopbackCredential

SIZE = 500
THROTTLED = 40  # answers 429 per bucket, set in the simulator
HOSTS = 3


@pytest.fixture
def throttled_estate(local_azure: LocalAzure, monkeypatch: pytest.MonkeyPatch) -> Iterator[Estate]:
    settings = {
        "ARM_RETRY_TOTAL": "10",
        "SET_LEASE_SECONDS": "15",  # way backs come sooner: the queue drains sooner
    }
    options = {"time_scale": 2.5, "provision_delay_s": 1.0, "lro_duration_s": 0.2, "page_size": 50}
    with estate_on(local_azure, settings, **options) as (estate, env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield estate


def test_a_500_instance_storm_over_three_hosts_meets_the_deadline_and_leaves_no_public_ip(
    throttled_estate: Estate,
) -> None:
    estate = throttled_estate
    estate.create_set("big", tags={"remediation.mode": "strip"})
    estate.scale("big", SIZE)
    events = estate.events()
    remediator = LoopbackCredential.APP_ID
    estate.sim.throttle_next(remediator, "writes", THROTTLED)
    estate.sim.throttle_next(remediator, "deletes", THROTTLED)

    deliveries = []
    with HostPool(HOSTS, estate.environment) as hosts:
        deliveries += play(hosts, events)
        until(lambda: all(estate.public_ips_of(vm) == [] for vm in estate.vms("big")), "no public IP", 900)
        until(lambda: work_queue_empty(estate), "the work queue drained")
        deliveries += play(hosts, estate.events())  # the remediator's own writes raise events too
        until(lambda: work_queue_empty(estate), "the work queue drained again")

    late = [d for d in deliveries if [a.outcome for a in d.attempts] != ["Delivered"]]
    assert late == [], f"{len(late)} deliveries not answered at once within {DEADLINE_S:g} s"
    assert len(estate.vms("big")) == SIZE
    assert estate.public_ip_count() == 0
    puts = estate.successful("PUT", NIC)
    deletes = estate.successful("DELETE", PUBLIC_IP)
    assert len(puts) == len(set(puts)) == SIZE, "exactly one successful PUT per NIC"
    assert len(deletes) == len(set(deletes)) == SIZE, "exactly one DELETE per public IP"
    throttled = Counter(
        r.method for r in estate.sim.requests() if r.status == 429 and r.principal == remediator
    )
    for method in ("PUT", "DELETE"):
        assert THROTTLED <= throttled[method] <= THROTTLED + MAX_PARALLEL_FINDINGS * HOSTS, (
            f"{method}: the storm met the throttling set, and its pacing (remediation/pacing.py) "
            "met a 429 beyond it only for requests in flight when the bucket emptied"
        )
