"""Specification of delivery across host processes: Event Grid's deadline, the work queue's
contract (host.json), single flight per set whichever hosts the work lands on, and a host that
dies mid-reconcile.

Each host is a process of its own (``localazure.functions_host``: its own process state, the
app's queue triggers polling the work queue as host.json says, Event Grid's webhook), all three
sharing only Azure: the simulator and Azurite. Event Grid is played by ``EventGridPlayer`` with
its real deadline. Everything is counted from the simulator's request log and state.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import pytest
from estate import Estate
from hosts import NIC, by_the_remediator, play, reconciles_per_set, until, work_queue_empty

from localazure.functions_host import HostPool
from remediation import single_flight
from sim.store import RequestRecord

STRIP = {"remediation.mode": "strip"}


@pytest.fixture
def hosts(estate: Estate) -> Iterator[HostPool]:
    # The shortest lease Azure allows: a way back (queued by a look that found its set taken)
    # comes a lease period later, and the work queue is drained only once it came.
    estate.environment["SET_LEASE_SECONDS"] = "15"
    with HostPool(3, estate.environment, running_visibility_s=20) as pool:
        yield pool


def test_the_same_events_three_times_shuffled_over_three_hosts_cost_a_few_reconciles_a_set(
    estate: Estate, hosts: HostPool
) -> None:
    names = [f"web{n}" for n in range(4)]
    for name in names:
        estate.create_set(name, tags=STRIP)
        estate.scale(name, 3)
    events = estate.events()
    shuffled = [dict(event) for event in events for _ in range(3)]
    random.Random(7).shuffle(shuffled)

    deliveries = play(hosts, shuffled)
    until(lambda: all(estate.public_ips_of(vm) == [] for n in names for vm in estate.vms(n)), "no public IP")
    until(lambda: work_queue_empty(estate), "the work queue drained")

    play(hosts, estate.events())  # the remediator's own NIC writes raise events too
    until(lambda: work_queue_empty(estate), "the work queue drained again")

    assert all(len(d.attempts) == 1 and d.attempts[0].outcome == "Delivered" for d in deliveries)
    per_set = reconciles_per_set(estate)
    assert set(per_set) == set(names)
    # Duplicates cost nothing (handled markers); the distinct events that arrive while a pass runs
    # cost one more pass together; one arriving after the mark was settled, a new look. So the
    # count follows the storm's length in passes, not its 30 events a set: measured 2-5.
    assert max(per_set.values()) <= single_flight.MAX_PASSES + 1, per_set
    puts = [
        r.path
        for r in estate.sim.requests()
        if r.method == "PUT" and r.resource_type == NIC and r.status < 300
    ]
    assert len(puts) == len(set(puts)) == 12, "exactly one successful PUT per NIC"


def test_a_host_killed_mid_reconcile_is_finished_by_another_once_its_lease_and_message_lapse(
    estate: Estate, capsys: pytest.CaptureFixture[str]
) -> None:
    from remediation.cli import main

    estate.environment.update(SET_LEASE_SECONDS="15", INTERRUPTED_WRITE_GRACE_SECONDS="10")
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 2)
    events = estate.events()
    killed: list[RequestRecord] = []
    kill_once = threading.Lock()
    with HostPool(1, estate.environment, running_visibility_s=20) as first:
        second_taken, dead = threading.Event(), threading.Event()

        def die_at_the_first_nic_put(record: RequestRecord) -> None:
            # ARM took the write (its intent was stored before it): the host dies before the answer.
            # It sends a set's NIC PUTs together, so the worst case is forced where it can be: the
            # first answer is held until the second PUT was applied too (bounded: a first look may
            # see one instance only), then the host dies knowing neither outcome.
            if record.method != "PUT" or record.resource_type != NIC:
                return
            with kill_once:
                if killed:
                    second_taken.set()
                    return
                killed.append(record)
            second_taken.wait(timeout=5)
            first.kill(0)
            dead.set()

        estate.sim.add_request_hook(die_at_the_first_nic_put)
        try:
            play(first, events)
            until(dead.is_set, "the host reached its first NIC PUT and died", 60)
        finally:
            estate.sim.remove_request_hook(die_at_the_first_nic_put)
        assert first.alive() == []
    # Attached or detached, the public IP whose PUT went unanswered is still there.
    assert estate.public_ip_count() > 0, "the set is not finished yet"

    with HostPool(2, estate.environment, running_visibility_s=20) as others:
        # The dead host's message reappears after its running visibility, its lease lapses.
        until(
            lambda: (
                estate.public_ip_count() == 0
                and all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))
            ),
            "another host finished: no public IP attached and none left detached",
        )
        until(lambda: work_queue_empty(estate), "the work queue drained")
        play(others, estate.events())
        until(lambda: work_queue_empty(estate), "the work queue drained again")

    records = estate.audit()
    intents = [r for r in records if r.kind.value == "intent"]
    for write in (
        r for r in estate.sim.requests() if by_the_remediator(r) and r.method in ("PUT", "DELETE", "PATCH")
    ):
        assert any(i.target.lower() == write.path.lower() and i.time <= write.received for i in intents), (
            f"{write.method} {write.path} had no intent before it"
        )
    assert main(["audit", "verify", "--since", "1h"]) == 0, capsys.readouterr().out
    assert "0 intents without outcome" in capsys.readouterr().out


def test_host_json_sets_the_queue_trigger_as_the_readme_says() -> None:
    import json
    from pathlib import Path

    from localazure.queues import QueueHostSettings

    root = Path(__file__).resolve().parents[1]
    queues = QueueHostSettings.from_host_json(root / "host.json", {})
    assert (queues.max_polling_interval_s, queues.visibility_timeout_s, queues.max_dequeue_count) == (
        2.0,
        30.0,
        5,
    )
    assert (queues.batch_size, queues.new_batch_threshold, queues.message_encoding) == (4, 2, "base64")
    assert json.loads((root / "host.json").read_text())["functionTimeout"] == "00:10:00"
    readme = (root / "README.md").read_text()
    for row in (
        "| `maxPollingInterval` | `00:00:02` |",
        "| `visibilityTimeout` | `00:00:30` |",
        "| `maxDequeueCount` | `5` |",
        "| `batchSize`, `newBatchThreshold` | `4`, `2` |",
        "| `functionTimeout` | `00:10:00` |",
    ):
        assert row in readme, row
