"""Benchmark of the audit log's review queries over 100,000 records on Azurite. Prints figures.

    .venv/bin/python bench/bench_audit.py [--records 100000] [--sets 200] [--days 7]

The records are spread evenly over the last ``--days`` days, ``--sets`` scale sets and events of
10 records each (received, decisions, intents, outcomes, verified, as a remediation writes
them), 1% of them failed. They are stored exactly as the app stores them (every copy, as
entity-group transactions). Then each question reviewers ask is timed (median of 5 runs, and
the first, cold, run): the last hour across all sets, one set's whole history, one event, and
what failed in the last day.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from localazure.azurite import Azurite  # noqa: E402
from remediation.audit import AuditLog  # noqa: E402
from remediation.journal import AuditUnavailable  # noqa: E402
from remediation.model import RecordKind  # noqa: E402
from remediation.records import AuditRecord  # noqa: E402
from remediation.review import Filters  # noqa: E402
from remediation.settings import Settings  # noqa: E402

SUB = "6a2e1c9d-6f3b-4f57-9d3e-2b1f4c8e7a10"
K = RecordKind
KINDS = [
    K.RECEIVED,
    K.DECISION,
    K.DECISION,
    K.INTENT,
    K.OUTCOME,
    K.INTENT,
    K.OUTCOME,
    K.VERIFIED,
    K.DECISION,
    K.DECISION,
]


SEED_ATTEMPTS = 5


def set_id(index: int) -> str:
    group = f"/subscriptions/{SUB}/resourceGroups/rg-{index % 20}"
    return f"{group}/providers/Microsoft.Compute/virtualMachineScaleSets/vmss-{index}"


def event_records(number: int, when: datetime, sets: int) -> list[AuditRecord]:
    event_id = str(uuid.uuid4())
    scale_set = set_id(number % sets)
    records = []
    for offset, kind in enumerate(KINDS):
        failed = kind is RecordKind.OUTCOME and number % 50 == 0
        records.append(
            AuditRecord(
                kind=kind,
                event_id=event_id,
                correlation_id=str(uuid.uuid4()) if offset == 0 else "",
                operation="Microsoft.Compute/virtualMachineScaleSets/write",
                scale_set=scale_set if kind is not RecordKind.RECEIVED else "",
                instance=f"{scale_set.replace('virtualMachineScaleSets', 'virtualMachines')}_{number:08x}",
                action="detach-public-ip" if kind in (RecordKind.INTENT, RecordKind.OUTCOME) else "",
                result=("failed" if failed else "succeeded") if kind is RecordKind.OUTCOME else "",
                reason="bench",
                time=when + timedelta(milliseconds=offset),
            )
        )
    return records


def count_records(log: AuditLog, filters: Filters) -> int:
    return sum(1 for _ in log.search(filters))


def timed(run: Callable[[], int], repeats: int = 5) -> tuple[float, float, int]:
    """(first run, median of the runs after it, records returned)."""
    times = []
    count = 0
    for _ in range(repeats + 1):
        started = time.perf_counter()
        count = run()
        times.append(time.perf_counter() - started)
    return times[0], statistics.median(times[1:]), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--sets", type=int, default=200)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()

    with Azurite() as azurite:
        settings = Settings.from_env(
            {
                "RemediationStorage": azurite.connection_string,
                "AUDIT_TABLE": "benchaudit",
                "STORAGE_RETRY_TOTAL": "3",
            }
        )
        log = AuditLog(settings)
        now = datetime.now(UTC)
        events = args.records // len(KINDS)
        step = timedelta(days=args.days) / events
        started = time.perf_counter()

        def store(first: int) -> None:
            journal = log.journal()
            for number in range(first, min(first + 50, events)):
                for record in event_records(
                    number, now - timedelta(days=args.days) + number * step, args.sets
                ):
                    journal.write(record)
            # Azurite sometimes resets a pooled connection, and the SDK does not retry a batch (a
            # POST). The journal keeps what a failed store took; a later flush stores it again as
            # upserts, as the app's next flush would.
            for attempt in range(1, SEED_ATTEMPTS + 1):
                try:
                    journal.flush()
                    return
                except AuditUnavailable:
                    if attempt == SEED_ATTEMPTS:
                        raise

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(store, range(0, events, 50)))
        print(
            f"stored {events * len(KINDS)} records ({events} events, {args.sets} sets, {args.days} days) "
            f"in {time.perf_counter() - started:.0f} s"
        )

        probe_set = set_id(7)
        probe_event = next(iter(log.search(Filters(now - timedelta(hours=2), now)))).event_id
        questions: dict[str, Filters] = {
            "last hour, all sets": Filters(now - timedelta(hours=1), now),
            "one set's history": Filters(now - timedelta(days=args.days + 1), now, scale_set=probe_set),
            "one event": Filters(now - timedelta(days=args.days + 1), now, event_id=probe_event),
            "failed, last 24h": Filters(now - timedelta(days=1), now, outcome="failed"),
        }
        for question, filters in questions.items():
            first, median, count = timed(functools.partial(count_records, log, filters))
            line = f"{question:<22} {count:>6} records: median {median * 1000:7.1f} ms"
            print(f"{line} (first run {first * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
