"""Fixtures for the simulator tests (a pytest plugin, loaded by tests/conftest.py): one running
simulator per session, reset before each test, authorizing every request with the tests' own
credential as Owner at the root scope (every simulator authorizes unless built not to)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sim_helpers import CONVENIENT, TEST_PRINCIPAL, Clients, make_clients

from sim import ArmSimulator

TEST_TIMINGS: dict[str, Any] = {"provision_delay_s": 0.1, "lro_duration_s": 0.02, "page_size": 20}


@pytest.fixture(scope="session")
def running_sim() -> Iterator[ArmSimulator]:
    with ArmSimulator(**TEST_TIMINGS, **CONVENIENT, authorization=True) as simulator:
        yield simulator


@pytest.fixture
def sim(running_sim: ArmSimulator) -> Iterator[ArmSimulator]:
    """The session's simulator, emptied (role assignments too), the tests' credential Owner at "/";
    pending work is drained after the test too."""
    running_sim.reset(access=True)
    running_sim.grant(TEST_PRINCIPAL, "Owner", "/")
    running_sim.reset()  # the request log starts empty: the grant is setup, not the test's request
    yield running_sim
    running_sim.wait_idle(5)


@pytest.fixture
def events(sim: ArmSimulator, _install_sink: None) -> list[dict[str, Any]]:
    """Events emitted during the test (sinks outlive reset(), so one sink feeds a per-test list)."""
    received: list[dict[str, Any]] = []
    _SINK.target = received
    return received


class _Sink:
    def __init__(self) -> None:
        self.target: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.target.append(event)


_SINK = _Sink()


@pytest.fixture(scope="session")
def _install_sink(running_sim: ArmSimulator) -> None:
    running_sim.add_event_sink(_SINK)


@pytest.fixture(scope="session")
def clients(running_sim: ArmSimulator) -> Clients:
    return make_clients(running_sim)
