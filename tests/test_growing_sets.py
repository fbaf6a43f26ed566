"""Specification of the watch of a growing set: a scale set's write event arrives when ARM accepts
the write, before the instances it asks for exist. The look that event causes finds the set still
growing, and the set is looked at again every WATCH_INTERVAL_SECONDS while it grows, so each new
instance's public IP is stripped within seconds of its NIC existing, not at the delayed re-checks
(here 60 s and more, so only the watch can have stripped them). Counted from the simulator's log
and the audit log."""

from __future__ import annotations

import time
from collections.abc import Iterator

import arm_docs as docs
import pytest
from estate import Estate, estate_on

from localazure.stack import LocalAzure
from remediation.model import RecordKind

STRIP = {"remediation.mode": "strip"}
NIC = "Microsoft.Network/networkInterfaces"
PROVISION_S = 3.0  # how long the scale-out takes in the simulator


@pytest.fixture
def slow_estate(local_azure: LocalAzure, monkeypatch: pytest.MonkeyPatch) -> Iterator[Estate]:
    settings = {
        "RECHECK_DELAYS_SECONDS": "60,120,240",  # the fallback, too late to matter here
        "WATCH_INTERVAL_SECONDS": "1",
    }
    with estate_on(local_azure, settings, provision_delay_s=PROVISION_S, page_size=50) as (estate, env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield estate


def stripped(estate: Estate, name: str) -> bool:
    return all(not estate.public_ips_of(vm) for vm in estate.vms(name))


def pump_until(estate: Estate, done: object, bound_s: float = 60.0) -> None:
    """Run the work queue as a host would (each message once it is visible) until ``done()``."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        estate.pump_rechecks()
        if callable(done) and done():
            return
        time.sleep(0.2)
    raise AssertionError(f"not done within {bound_s:g} s")


def test_a_set_whose_event_came_before_its_instances_is_watched_until_they_are_stripped(
    slow_estate: Estate,
) -> None:
    estate = slow_estate
    estate.create_set("grow", tags=STRIP)
    body = estate.compute.virtual_machine_scale_sets.get(docs.GROUP, "grow").as_dict()
    body["sku"]["capacity"] = 3
    with estate.sim.operations_held():  # however slow the machine, no instance exists yet
        scaling = estate.compute.virtual_machine_scale_sets.begin_create_or_update(docs.GROUP, "grow", body)
        # The set's write event, as Event Grid delivers it once ARM accepted the write, and its look.
        estate.take_in(docs.write_event(docs.set_id("grow")))
        assert estate.pump_once() == 1
        assert estate.vms("grow") == [], "the look ran before any instance existed"

    pump_until(
        estate, lambda: scaling.done() and all(not estate.public_ips_of(vm) for vm in estate.vms("grow"))
    )

    assert len(estate.vms("grow")) == 3
    assert len(estate.successful("PUT", NIC)) == 3, "one detach per instance"
    reasons = [r.reason for r in estate.audit() if r.kind is RecordKind.DECISION]
    assert any("watch 1:" in reason for reason in reasons), "a watch look was queued"
    fallbacks = [reason for reason in reasons if "re-check 1 in 60 s" in reason]
    assert len(fallbacks) == 1, "the first look queued the fallback re-check; the watch's looks did not"
    looks_so_far = len(estate.audit())
    time.sleep(2.5)  # two watch periods: a settled set is not looked at again
    estate.pump_rechecks()
    later = [r for r in estate.audit()[looks_so_far:] if "watch" in r.reason]
    assert len(later) <= 1, f"the watch went on after the set settled: {[r.reason for r in later]}"


def test_an_event_while_a_watch_look_is_pending_joins_it(slow_estate: Estate) -> None:
    estate = slow_estate
    estate.create_set("grow", tags=STRIP)
    body = estate.compute.virtual_machine_scale_sets.get(docs.GROUP, "grow").as_dict()
    body["sku"]["capacity"] = 2
    scaling = estate.compute.virtual_machine_scale_sets.begin_create_or_update(docs.GROUP, "grow", body)
    estate.deliver(docs.write_event(docs.set_id("grow")))  # its look queues the first watch look
    estate.take_in(docs.write_event(docs.set_id("grow")))  # a second event while that look waits

    joined = [r for r in estate.audit() if r.kind is RecordKind.DECISION and r.reason.startswith("joined")]
    assert len(joined) == 1, "the second event joined the pending watch look instead of queuing one"
    pump_until(
        estate, lambda: scaling.done() and all(not estate.public_ips_of(vm) for vm in estate.vms("grow"))
    )
    assert len(estate.successful("PUT", NIC)) == 2
