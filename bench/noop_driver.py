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
this process: wall time and process CPU time (every thread) over the measured events only.
Prints one JSON object on stdout.
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

    with ThreadPoolExecutor(max_workers=run["concurrency"]) as pool:
        list(pool.map(deliver, warmup))
        cpu_before, started = time.process_time(), time.perf_counter()
        list(pool.map(deliver, measured))
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_before
    print(
        json.dumps(
            {
                "events": len(measured),
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "events_per_s": len(measured) / seconds,
                "cpu_ms_per_event": cpu_seconds / len(measured) * 1000,
                "failures": len(failures),
                "first_failure": failures[0] if failures else "",
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
