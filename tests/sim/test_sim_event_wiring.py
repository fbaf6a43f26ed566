"""The deployIfNotExists stand-in: a subscription placed under a group with a registered event wiring
gets its system topic and event subscription after the policy's delay, and with
`events_need_wiring` its resource events reach the sinks only from then on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.core.rest import HttpRequest
from sim_fixtures import TEST_TIMINGS
from sim_helpers import CONVENIENT, RG, SUB, TEST_PRINCIPAL, Clients, make_clients, pip_body

from sim import ArmSimulator

EG_API = "api-version=2025-02-15"
TOPIC = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.EventGrid/systemTopics/egst"
FUNCTION = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Web/sites/func/functions/on-event"
RECEIVED: list[dict[str, Any]] = []


@pytest.fixture(scope="module")
def gated() -> Iterator[ArmSimulator]:
    with ArmSimulator(**TEST_TIMINGS, **CONVENIENT, events_need_wiring=True) as simulator:
        simulator.add_event_sink(RECEIVED.append)
        yield simulator


@pytest.fixture
def setup(gated: ArmSimulator) -> Iterator[tuple[ArmSimulator, Clients]]:
    gated.reset(access=True)
    gated.grant(TEST_PRINCIPAL, "Owner", "/")
    RECEIVED.clear()
    yield gated, make_clients(gated)
    gated.wait_idle(5)


def deploy_over_https(sim: ArmSimulator, clients: Clients) -> Callable[[str], None]:
    """What the policy's deployment creates, over HTTPS: the topic, then its event subscription."""

    def deploy(subscription: str) -> None:
        topic = {
            "location": "global",
            "properties": {
                "source": f"/subscriptions/{subscription}",
                "topicType": "Microsoft.Resources.Subscriptions",
            },
        }
        delivery = {
            "properties": {
                "destination": {"endpointType": "AzureFunction", "properties": {"resourceId": FUNCTION}}
            }
        }
        for path, body in ((TOPIC, topic), (f"{TOPIC}/eventSubscriptions/remediator", delivery)):
            answer = clients.network.send_request(HttpRequest("PUT", f"{path}?{EG_API}", json=body))
            assert answer.status_code in (200, 201), answer.text()
            sim.wait_idle(5)

    return deploy


def write_a_public_ip(sim: ArmSimulator, clients: Clients, name: str) -> None:
    """Create one, to its end (its event is published as its operation completes: `events_at`)."""
    clients.network.public_ip_addresses.begin_create_or_update(RG, name, pip_body()).result()
    sim.advance_clock(0)  # what fell due (the completion and its event) has run; the policy's wait has not


def event_subjects() -> list[str]:
    return [str(e["subject"]).rsplit("/", 1)[-1] for e in RECEIVED]


def test_a_subscription_added_after_registration_is_wired_after_the_delay_and_only_then_emits(
    setup: tuple[ArmSimulator, Clients],
) -> None:
    sim, clients = setup
    sim.create_management_group("landing-zones")
    sim.register_event_wiring("landing-zones", deploy_over_https(sim, clients), delay_s=600)
    sim.place_subscription(SUB, "landing-zones")
    write_a_public_ip(sim, clients, "before")
    assert event_subjects() == [] and not sim.is_wired(SUB)
    sim.advance_clock(599)
    sim.wait_event_wiring()
    assert not sim.is_wired(SUB)
    sim.advance_clock(1)
    sim.wait_event_wiring()
    assert sim.is_wired(SUB)
    write_a_public_ip(sim, clients, "after")
    assert event_subjects() == ["after"]


def test_a_subscription_already_there_waits_for_the_remediation_task(
    setup: tuple[ArmSimulator, Clients],
) -> None:
    sim, clients = setup
    sim.create_management_group("landing-zones")
    sim.place_subscription(SUB, "landing-zones")
    sim.register_event_wiring("landing-zones", deploy_over_https(sim, clients), delay_s=0)
    sim.advance_clock(3600)
    write_a_public_ip(sim, clients, "unwired")
    assert event_subjects() == []
    assert sim.remediate_event_wiring("landing-zones") == [SUB]
    sim.wait_event_wiring()
    write_a_public_ip(sim, clients, "wired")
    assert event_subjects() == ["wired"]


def test_a_subscription_placed_outside_the_group_is_never_wired(setup: tuple[ArmSimulator, Clients]) -> None:
    sim, clients = setup
    sim.create_management_group("landing-zones")
    sim.create_management_group("sandbox")
    sim.register_event_wiring("landing-zones", deploy_over_https(sim, clients), delay_s=0)
    sim.place_subscription(SUB, "sandbox")
    sim.advance_clock(3600)
    sim.wait_event_wiring()
    assert not sim.is_wired(SUB)
