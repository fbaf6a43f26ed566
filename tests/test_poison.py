"""Specification of the poison queue: a look whose handling keeps failing is retried by the host as
host.json says, then moved to `<queue>-poison`, whose trigger records it in the audit log and keeps
it; `remediation replay --poison` puts it back on the work queue once the cause is gone.

The queue triggers run under ``localazure.queues.QueueListener``, which plays the Functions host's
queue contract (dequeue count, maxDequeueCount, the poison queue)."""

from __future__ import annotations

import pytest
from estate import Estate

from localazure.host import user_function
from localazure.queues import QueueHostSettings, QueueListener, peek_poison
from remediation.cli import main
from remediation.model import RecordKind
from sim import Faults

STRIP = {"remediation.mode": "strip"}
NIC = "Microsoft.Network/networkInterfaces"
# As host.json's, with retries at once and two tries (the test need not wait for 30 s, nor five).
QUICK = QueueHostSettings(
    batch_size=1,
    new_batch_threshold=0,
    max_polling_interval_s=0.2,
    visibility_timeout_s=0,
    max_dequeue_count=2,
)


def listener(estate: Estate, queue: str, function: str) -> QueueListener:
    return QueueListener(
        estate.environment["RemediationStorage"], queue, user_function(function), settings=QUICK
    )


def test_a_look_that_keeps_failing_is_poisoned_recorded_and_replayed_once_arm_is_back(
    estate: Estate, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ARM_RETRY_TOTAL", "0")
    work_queue = estate.environment["RECHECK_QUEUE"]
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 1)
    estate.sim.advance_clock(estate.sim.settings.list_lag_s)  # listed when the look runs: one look
    for event in estate.events():
        estate.take_in(event)
    # Every NIC PUT loses its connection: each try of the look fails, and the host retries it.
    estate.sim.set_faults(Faults(rate_drop=1.0, only_methods=frozenset({"PUT"}), only_types=frozenset({NIC})))

    report = listener(estate, work_queue, "on_work").drain(idle_s=0.5, timeout_s=120)

    assert (report.failed, report.poisoned) == (2, 1), "two tries (maxDequeueCount), then the poison queue"
    (poisoned,) = peek_poison(estate.environment["RemediationStorage"], work_queue)
    assert '"scale_set"' in poisoned.text

    assert (
        listener(estate, f"{work_queue}-poison", "on_poison").drain(idle_s=0.5, timeout_s=60).delivered == 1
    )
    (recorded,) = [r for r in estate.audit() if r.kind is RecordKind.ERROR and r.reason.startswith("poison:")]
    assert "maxDequeueCount" in recorded.reason and recorded.archive.startswith("poison/")
    assert recorded.scale_set.lower().endswith("/virtualmachinescalesets/web")
    assert any(estate.public_ips_of(vm) for vm in estate.vms("web")), "not remediated yet"

    estate.sim.set_faults(None)
    assert main(["replay", "--poison", "1h"]) == 0
    assert "1 events queued" in capsys.readouterr().out
    estate.pump_rechecks()
    assert all(estate.public_ips_of(vm) == [] for vm in estate.vms("web"))
