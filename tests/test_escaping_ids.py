"""Resource ids built to escape, end to end: an event naming one is rejected with a record naming
the offending segment before anything is read, the simulator sees no request for it, and the
delivery succeeds (a delivery that raised would be redelivered, endlessly).

The HTTP client collapses ``.`` and ``..`` path segments (urllib3 removes dot segments from an
http(s) URL), so an id such as ``.../virtualMachineScaleSets/.`` was read as the list
``.../virtualMachineScaleSets/``, whose body is no scale set: the handler raised on it, and Event
Grid redelivered it until it dead-lettered it."""

from __future__ import annotations

import json
from typing import Any

import arm_docs as docs
import pytest
from estate import Estate

from remediation.model import RecordKind
from remediation.settings import Settings
from remediation.work_queue import RecheckQueue

NETWORK = f"{docs.PREFIX}/Microsoft.Network"
COMPUTE = f"{docs.PREFIX}/Microsoft.Compute"


def event_for(resource_uri: str, operation: str) -> dict[str, Any]:
    """A ResourceWriteSuccess event as ARM sends it, naming ``resource_uri`` as its subject."""
    event = docs.write_event(docs.set_id("web"))
    event["subject"] = resource_uri
    event["data"].update(resourceUri=resource_uri, operationName=operation)
    return event


@pytest.mark.parametrize(
    ("resource_uri", "operation", "named"),
    [
        (
            f"{COMPUTE}/virtualMachineScaleSets/web/../..",
            "Microsoft.Compute/virtualMachineScaleSets/write",
            "segment 9 '..' is a relative path segment",
        ),
        # Collapses into the list of the group's scale sets.
        (
            f"{COMPUTE}/virtualMachineScaleSets/.",
            "Microsoft.Compute/virtualMachineScaleSets/write",
            "segment 8 '.' is a relative path segment",
        ),
        # Collapses into the list of the group's NICs.
        (
            f"{NETWORK}/networkInterfaces/.",
            "Microsoft.Network/networkInterfaces/write",
            "segment 8 '.' is a relative path segment",
        ),
        # Collapses into the list of the group's VMs.
        (
            f"{COMPUTE}/virtualMachines/.",
            "Microsoft.Compute/virtualMachines/write",
            "segment 8 '.' is a relative path segment",
        ),
        # Collapses into the provider's root: .../providers/Microsoft.Compute/
        (
            f"{COMPUTE}/virtualMachineScaleSets/..",
            "Microsoft.Compute/virtualMachineScaleSets/write",
            "segment 8 '..' is a relative path segment",
        ),
        # A trailing slash: the set's own URL ends with it.
        (
            f"{COMPUTE}/virtualMachineScaleSets/web/",
            "Microsoft.Compute/virtualMachineScaleSets/write",
            "segment 9 is empty",
        ),
    ],
    ids=["dot-dot-dot-dot", "set-list", "nic-list", "vm-list", "provider-root", "trailing-slash"],
)
def test_an_event_naming_an_escaping_id_is_rejected_naming_the_segment_and_nothing_is_read(
    estate: Estate, resource_uri: str, operation: str, named: str
) -> None:
    estate.create_set("web", capacity=1, tags={"remediation.mode": "strip"})
    estate.events()  # the estate's own events are not this test's
    before = len(estate.sim.requests())
    event = event_for(resource_uri, operation)

    estate.deliver(event)  # raises if the function raised (Event Grid would redeliver)

    requests = estate.sim.requests()[before:]
    assert requests == [], f"ARM was asked: {[(r.method, r.path) for r in requests]}"
    records = [r for r in estate.audit() if r.event_id == event["id"]]
    assert [r.kind for r in records] == [RecordKind.REJECTED]
    assert named in records[0].reason, records[0].reason


@pytest.mark.parametrize(
    ("scale_set", "named"),
    [
        (docs.nic_id("web-nic"), "is a Microsoft.Network/networkInterfaces, not a Microsoft.Compute/"),
        (f"{COMPUTE}/virtualMachineScaleSets/.", "segment 8 '.' is a relative path segment"),
        (f"{COMPUTE}/virtualMachineScaleSets/web%2F..", "segment 8 'web%2F..' is not a valid name"),
    ],
    ids=["nic-id", "set-list", "percent-encoded"],
)
def test_a_queued_look_at_an_id_that_is_no_scale_set_is_rejected_naming_why_and_nothing_is_read(
    estate: Estate, scale_set: str, named: str
) -> None:
    """A work message (a replayed poison message, or one written by hand) is checked as an event is."""
    estate.create_set("web", capacity=1, tags={"remediation.mode": "strip"})
    estate.events()
    before = len(estate.sim.requests())
    RecheckQueue(Settings.from_env(estate.environment)).send(
        json.dumps({"scale_set": scale_set, "attempt": 0})
    )

    assert estate.pump_rechecks() == 1  # raises if the function raised (the queue would redeliver)

    requests = estate.sim.requests()[before:]
    assert requests == [], f"ARM was asked: {[(r.method, r.path) for r in requests]}"
    rejected = [r for r in estate.audit() if r.kind is RecordKind.REJECTED]
    assert len(rejected) == 1 and named in rejected[0].reason, [r.reason for r in rejected]
    assert rejected[0].reason.startswith("work message scale_set: resource id ")
