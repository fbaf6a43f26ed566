"""The tenant benchmark's own process for a sweep (bench/bench_tenant.py; its events go through
bench/noop_driver.py, as the no-op benchmark's do).

    .venv/bin/python bench/tenant_driver.py

The app settings are in the environment. The deployed timer function, ``function_app.sweep``, is
called once as the host calls it (``azure.functions.TimerRequest``), after the app is indexed and
its remediator built (not measured); then the looks it queued run in this same process as the
queue trigger runs them (``noop_driver.drain_work_queue``: the deployed ``function_app.on_work``,
host.json's batch size and concurrency). Measured here, each apart: wall time and this process's
CPU time (every thread); and the messages the sweep added to the work queue, as Azurite counts
them, read before its looks run. Prints one JSON object on stdout.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from noop_driver import drain_work_queue, queue_length  # noqa: E402

from localazure.host import user_function  # noqa: E402


def main() -> int:
    from azure.functions.timer import TimerRequest

    from remediation.engine import remediator_for
    from remediation.settings import Settings

    remediator_for(Settings.from_env())  # the process's remediator, as a warm host holds it
    sweep = user_function("sweep")
    before = queue_length()
    cpu_before, started, window_start = time.process_time(), time.perf_counter(), datetime.now(UTC)
    sweep(TimerRequest(past_due=False))
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_before
    window_end = datetime.now(UTC)
    figures = {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "queued": queue_length() - before,  # as Azurite counts the work queue's messages
        # When the sweep ran: a reader of ARM's log tells its requests from its looks'.
        "window": {"start": window_start.isoformat(), "end": window_end.isoformat()},
        "drain": drain_work_queue(),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
