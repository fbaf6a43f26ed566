"""The no-op path's own process, measured as the benchmark peer's is (bench/c7n_peer_driver.py).

    .venv/bin/python bench/noop_driver.py RUN.json

The app settings are in the environment (the bench's fresh storage names, the simulator's
endpoint). RUN.json names the file of Event Grid events (JSON lines), how many of them warm up
(not measured), the concurrency, and ``stamp``: whether each event is raised as it is delivered
(its ``eventTime`` set then: "live") or keeps the time it was written with ("backlog").

What runs is the deployed Event Grid function, ``function_app.on_resource_event``, indexed as the
Functions host indexes it and called with the ``azure.functions.EventGridEvent`` the Python worker
builds (``localazure.host``): the work the worker process does per event, without the webhook's
HTTP hop, which in Azure is the Functions host's (a .NET process), not the worker's. Measured in
this process: wall time and process CPU time (every thread) over the measured events only, and
when they were delivered (``window``, UTC). With ``drain`` in RUN.json, the messages the measured
events added to the work queue are counted as Azurite counts them (``queued``), and the looks they
queued are then run in this same process (``drain_work_queue``: the deployed queue function,
``function_app.on_work``, fed by the queue trigger as host.json sets it), measured apart
(``drain``). Prints one JSON object on stdout.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from localazure.host import deliver_event_grid  # noqa: E402


def queue_length() -> int:
    """The work queue's messages, as Azurite counts them (exactly; 0 before it exists)."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.queue import QueueClient

    from remediation.settings import Settings

    settings = Settings.from_env()  # the app settings in the environment: where its queue is
    queue = QueueClient.from_connection_string(settings.storage_connection_string, settings.recheck_queue)
    with queue:
        try:
            return int(queue.get_queue_properties().approximate_message_count or 0)
        except ResourceNotFoundError:
            return 0


def drain_work_queue(timeout_s: float = 300.0) -> dict[str, Any]:
    """Run the work queue's messages through ``function_app.on_work`` as the queue trigger does
    (``localazure.queues``: host.json's batch size, concurrency and visibility) until the queue has
    held nothing for a second, bounded by ``timeout_s``; the listener runs in this process (in
    Azure it is the Functions host's). Returns what ran, its wall time (to the last look's end)
    and this process's CPU time over it."""
    from localazure.host import user_function
    from localazure.queues import QueueListener
    from remediation.settings import Settings

    settings = Settings.from_env()
    listener = QueueListener(
        settings.storage_connection_string, settings.recheck_queue, user_function("on_work")
    )
    cpu_before, started = time.process_time(), time.time()
    report = listener.drain(idle_s=1.0, timeout_s=timeout_s)
    cpu_seconds = time.process_time() - cpu_before
    outcomes: dict[str, int] = {}
    for invocation in report.invocations:
        outcomes[invocation.outcome] = outcomes.get(invocation.outcome, 0) + 1
    ended = max((invocation.ended for invocation in report.invocations), default=started)
    return {
        "delivered": report.delivered,
        "failed": report.failed,
        "poisoned": report.poisoned,
        "max_running": report.max_running,
        "timed_out": report.timed_out,
        "outcomes": outcomes,
        "seconds": ended - started,  # the idle second after the last look left out
        "cpu_seconds": cpu_seconds,
    }


def main() -> int:
    run = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    events = [json.loads(line) for line in Path(run["events_file"]).read_text(encoding="utf-8").splitlines()]
    warmup, measured = events[: run["warmup"]], events[run["warmup"] :]
    stamp = bool(run["stamp"])
    failures: list[str] = []

    def deliver(event: dict[str, Any]) -> None:
        if stamp:
            event = {**event, "eventTime": datetime.now(UTC).isoformat()}
        try:
            deliver_event_grid(event)
        except Exception as error:  # noqa: BLE001 - counted and reported, the run goes on
            failures.append(f"{type(error).__name__}: {error}")

    draining = bool(run.get("drain"))
    with ThreadPoolExecutor(max_workers=run["concurrency"]) as pool:
        list(pool.map(deliver, warmup))
        queued_before = queue_length() if draining else 0
        cpu_before, started, window_start = time.process_time(), time.perf_counter(), datetime.now(UTC)
        list(pool.map(deliver, measured))
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_before
        window_end = datetime.now(UTC)
    queued = queue_length() - queued_before if draining else None
    drained = drain_work_queue() if draining else None
    print(
        json.dumps(
            {
                "queued": queued,
                "drain": drained,
                "events": len(measured),
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "events_per_s": len(measured) / seconds,
                "cpu_ms_per_event": cpu_seconds / len(measured) * 1000,
                "failures": len(failures),
                "first_failure": failures[0] if failures else "",
                # When the measured events were delivered: a reader of ARM's log counts their requests.
                "window": {"start": window_start.isoformat(), "end": window_end.isoformat()},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
