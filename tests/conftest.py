"""Fixtures: the local Azure stand-in (ARM simulator + Azurite), started once per test session on
loopback, an empty estate and a fresh audit table per test, and the function app indexed as the
Functions host would index it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from estate import Estate
from hypothesis import settings

from localazure.stack import LocalAzure
from remediation.credentials import LoopbackCredential

# The simulator's own tests (tests/sim) take their fixtures from this plugin.
pytest_plugins = ["sim_fixtures"]


@pytest.fixture(scope="session")
def local_azure() -> Iterator[LocalAzure]:
    with LocalAzure(provision_delay_s=0.2, lro_duration_s=0.05, page_size=5) as local:
        yield local


@pytest.fixture
def estate(
    local_azure: LocalAzure, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Estate]:
    """An empty subscription and a new audit table, with the app settings pointing at both.

    ARM authorises every request (the remediator holds the deployed custom role, the estate's
    builder Owner); a test in which the remediator met a 403 fails, unless it is about refusals
    (``@pytest.mark.refusals``)."""
    local_azure.arm.reset(access=True)  # role assignments too: the Estate grants them again
    unique = uuid.uuid4().hex[:12]
    environment = local_azure.environment(
        audit_table=f"audit{unique}",
        recheck_queue=f"recheck-{unique}",
        archive_container=f"archive-{unique}",
        lock_container=f"locks-{unique}",
        ledger_container=f"ledger-{unique}",
    )
    # Tests pump the queue themselves (Estate.pump_rechecks), ARM's time passing between rounds.
    environment["RECHECK_DELAYS_SECONDS"] = "0,0,0"
    environment["WATCH_INTERVAL_SECONDS"] = "0"
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    with Estate(local_azure, environment) as built:
        yield built
    refused = [
        f"{r.method} {r.path} {r.error_code}"
        for r in local_azure.arm.requests()
        if r.status == 403 and r.principal.lower() == LoopbackCredential.APP_ID.lower()
    ]
    if refused and request.node.get_closest_marker("refusals") is None:
        pytest.fail(f"ARM refused the remediator {len(refused)} times: {refused[:3]}")


# Property-based tests: a few hundred examples in `make test`; `make fuzz` sets HYPOTHESIS_PROFILE=long.
settings.register_profile("default", max_examples=200, deadline=None)
settings.register_profile("long", max_examples=10_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
