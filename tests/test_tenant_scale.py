"""Enforcing across a whole tenant (issue 16): the app monitors one management group, `platform`,
holding 200 subscriptions (some in its two landing-zone groups beneath) with 2,000 scale sets in
all, 50 of them restricted (tag `remediation.mode=strip`) and spread at random over 43 of the
subscriptions (tests/tenant.py seeds them; a restricted set in a subscription under another
group is there too, and must be left out).

Everything asserted is read from outside the product: ARM's side of the conversation (the
simulator's request log: paths, methods, the Resource Graph bodies with their `$skipToken`s) and
the work queue as Azurite holds it (its messages, decoded as the queue trigger decodes them).

- A sweep reads which subscriptions are under the group once, its descendants page after page, and
  asks Resource Graph at the group's scope for every page of its scale sets, each page once; it
  sends nothing per subscription and writes nothing to ARM.
- Then the work queue holds exactly one look at each of the 50 restricted sets: none at an
  unrestricted set, none at the set outside the group, none twice.
- After the sweep, events from any of the 200 subscriptions are taken without reading the groups
  again: one read of the set the event names, and a restricted set's event joins the look the
  sweep queued instead of queuing another.

Nothing here depends on the machine's speed: no time is asserted.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import arm_docs as docs
import pytest
from estate import Estate
from tenant import GROUP, LANDING_ZONES, SET_TYPE, STRIP, Tenant, grant_remediator, seed_tenant, write_event

from localazure.host import deliver_event_grid
from remediation.credentials import LoopbackCredential
from sim.request_log import RequestRecord

GRAPH = "Microsoft.ResourceGraph/resources"
DESCENDANTS = f"/providers/Microsoft.Management/managementGroups/{GROUP}/descendants"
MANAGEMENT = "/providers/microsoft.management/"
OUTSIDE_SUBSCRIPTION = "7e4a0000-0000-4000-8000-999999999999"


@pytest.fixture
def tenant(estate: Estate, monkeypatch: pytest.MonkeyPatch) -> Tenant:
    """The tenant seeded (no request, no event), the app monitoring the group alone."""
    seeded = seed_tenant(estate.sim)
    grant_remediator(estate.sim)
    estate.sim.create_management_group("sandbox")
    estate.sim.place_subscription(OUTSIDE_SUBSCRIPTION, "sandbox")
    outside = json.loads(
        json.dumps(docs.scale_set("vmss-00", 0, STRIP)).replace(docs.SUB, OUTSIDE_SUBSCRIPTION)
    )
    estate.sim.seed(outside)
    # It could read that set: only the scope of what it asks leaves the set out.
    estate.sim.grant(
        LoopbackCredential.APP_ID, "Reader", "/providers/Microsoft.Management/managementGroups/sandbox"
    )
    monkeypatch.setenv("REMEDIATION_POLICY", json.dumps({"monitored_management_groups": [GROUP]}))
    return seeded


def remediators(records: list[RequestRecord]) -> list[RequestRecord]:
    return [r for r in records if r.principal.lower() == LoopbackCredential.APP_ID.lower()]


def is_management(record: RequestRecord) -> bool:
    return record.path.lower().startswith(MANAGEMENT)


def queued_looks(estate: Estate) -> Iterator[dict[str, Any]]:
    """Every message in the work queue, as the queue trigger decodes it (Base64 JSON), each
    received once (hidden for the rest of the test); bounded."""
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy

    queue = QueueClient.from_connection_string(
        estate.environment["RemediationStorage"],
        estate.environment["RECHECK_QUEUE"],
        message_decode_policy=TextBase64DecodePolicy(),
    )
    with queue:
        for _ in range(20):  # 32 a batch: far more than the 50 looks
            batch = list(queue.receive_messages(max_messages=32, visibility_timeout=600))
            if not batch:
                return
            for message in batch:
                yield json.loads(message.content)
        raise AssertionError("the work queue did not run dry within 20 batches")


def queue_length(estate: Estate) -> int:
    from azure.storage.queue import QueueClient

    queue = QueueClient.from_connection_string(
        estate.environment["RemediationStorage"], estate.environment["RECHECK_QUEUE"]
    )
    with queue:
        count = queue.get_queue_properties().approximate_message_count  # exact in Azurite
    assert count is not None
    return count


def test_a_sweep_of_200_subscriptions_reads_the_group_pages_resource_graph_and_sends_nothing_per_subscription(
    estate: Estate, tenant: Tenant
) -> None:
    assert (len(tenant.subscriptions), len(tenant.sets), len(tenant.restricted)) == (200, 2000, 50)
    assert len({tenant.subscription_of(set_id) for set_id in tenant.restricted}) == 43
    before = len(estate.sim.requests())

    estate.sweep()

    sent = remediators(estate.sim.requests()[before:])
    descendants = [r for r in sent if is_management(r)]
    graph = [r for r in sent if r.resource_type == GRAPH]
    assert [r for r in sent if r not in descendants and r not in graph] == [], "nothing per subscription"

    # The group's descendants: its two landing zones and the 200 subscriptions, page after page.
    items = len(LANDING_ZONES) + len(tenant.subscriptions)
    assert {(r.method, r.path, r.status) for r in descendants} == {("GET", DESCENDANTS, 200)}
    assert len(descendants) == math.ceil(items / estate.sim.settings.page_size), "each page once"

    # Resource Graph at the group's scope, every page once, each after the one before.
    bodies = [json.loads(r.body) for r in graph]
    assert all(r.method == "POST" and r.status == 200 for r in graph)
    assert all(body["managementGroups"] == [GROUP] and "subscriptions" not in body for body in bodies)
    assert all(SET_TYPE.lower() in body["query"].lower() for body in bodies)
    rows_a_page = bodies[0]["options"]["$top"]
    assert len(graph) == math.ceil(len(tenant.sets) / rows_a_page) >= 2, "2,000 sets are more than a page"
    tokens = [body["options"].get("$skipToken") for body in bodies]
    assert tokens[0] is None and None not in tokens[1:] and len(set(tokens)) == len(tokens)


def test_after_the_sweep_the_work_queue_holds_one_look_at_each_restricted_set_and_no_other(
    estate: Estate, tenant: Tenant
) -> None:
    estate.sweep()

    assert queue_length(estate) == 50
    looks = [message["scale_set"].lower() for message in queued_looks(estate)]
    assert len(looks) == 50 and len(set(looks)) == 50, "none twice"
    assert set(looks) == tenant.restricted, "exactly the restricted sets"
    assert not [look for look in looks if OUTSIDE_SUBSCRIPTION in look], "none outside the group"


def test_after_the_sweep_events_from_any_subscription_are_taken_without_reading_the_group_again(
    estate: Estate, tenant: Tenant
) -> None:
    estate.sweep()
    restricted = sorted(tenant.restricted)[:5]
    unrestricted = [s for s in tenant.sets[::100] if s.lower() not in tenant.restricted]  # 20 subscriptions
    before = len(estate.sim.requests())

    for set_id in unrestricted + restricted:
        deliver_event_grid(write_event(set_id))

    sent = remediators(estate.sim.requests()[before:])
    assert [r for r in sent if is_management(r)] == [], "the group's members were read once, by the sweep"
    reads = sorted(r.path.lower() for r in sent if r.method == "GET")
    assert reads == sorted(s.lower() for s in unrestricted + restricted), "one read of each event's set"
    assert [r for r in sent if r.method != "GET"] == []
    assert queue_length(estate) == 50, "a restricted set's event joined the look the sweep queued"
    assert {look["scale_set"].lower() for look in queued_looks(estate)} == tenant.restricted


def connections_to(port: int) -> int:
    """TCP connections open to ``port`` (the simulator's), from any process, as the kernel lists
    them (ESTABLISHED, the client's end: the remote port is the simulator's)."""
    found = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    found += 1
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the kernel's TCP table")
def test_one_gateway_reads_across_the_subscriptions_over_one_connection_not_one_per_subscription(
    estate: Estate, tenant: Tenant
) -> None:
    """Every client of a gateway (one per subscription and SDK) shares its pool: ARM is one host.
    Reads one after another reuse one kept-alive connection."""
    from remediation.arm import ArmGateway
    from remediation.resource_ids import ResourceId
    from remediation.settings import Settings

    port = int(estate.environment["ARM_ENDPOINT"].rsplit(":", 1)[1])
    gateway = ArmGateway(Settings.from_env())
    opened = connections_to(port)
    sets = [ResourceId.parse(set_id) for set_id in tenant.sets[::50]]  # 40 sets in 40 subscriptions
    assert len({set_id.subscription for set_id in sets}) == 40

    for set_id in sets:
        assert gateway.get_scale_set(set_id) is not None
        assert gateway.list_nics(set_id.subscription, set_id.resource_group) is not None

    assert connections_to(port) - opened <= 2, "one pool for every subscription's clients"
