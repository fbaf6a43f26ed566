"""Benchmark peers against the same local ARM simulator: Cloud Custodian's Azure event mode on the
no-op event of bench/bench_engine.py. Prints figures; asserts only that the work was a no-op.

    make bench-peers    # once: c7n and c7n-azure into .peers-venv (bench/peers-requirements.txt)
    .venv/bin/python bench/bench_peers.py [--events 2000] [--concurrency 1 16] [--max-seconds 300]
                                          [--no-throttling]

The event: Event Grid's ``Microsoft.Resources.ResourceWriteSuccess`` for an unrestricted scale set
(``arm_docs.write_event``, as bench_engine's no-op path sends), each copy with its own id. The peer:
a c7n policy of mode ``azure-event-grid`` on ``azure.vmss`` subscribed to the sets' writes, whose
filter (the tag ``remediation.mode`` is ``strip``, the product's own restriction) the set does not
match, so its action never runs. c7n-azure's Functions entry handles the events in ONE process of
``.peers-venv/bin/python`` (bench/c7n_peer_driver.py, with 1 or 16 threads: the Python worker runs a
sync function in a thread pool, and the queue trigger fetches 16 messages at a time), which measures
events/s (wall) and CPU ms per event (its process CPU time) over the measured events only; c7n's
imports, set-up, a control event and 20 warm-up events are not measured. The ARM requests are
counted from the simulator's request log, not from c7n: those of the peer's principal in the
measured window, per event. The simulator is built as bench_engine's no-op path builds it
(authorisation and ARM's throttling on): c7n reads ARM twice per event, so its principal's read
bucket (25 per second) holds it near 12.5 events/s whatever its speed; "events/s of CPU" (1000 / CPU
ms per event) and ``--no-throttling`` show the handler's own speed.

What c7n does per event that the product does not: it reloads the policy file and the auth file,
builds a new session and two new ResourceManagementClients (so two new TLS connections), and reads
the provider's API versions before the resource. What it does not: no archive, duplicate check or
audit record in storage. The Functions host's queue trigger, which hands c7n its messages, is not in
the measured process; the product's webhook hop is in its host process.

`measure_peer` is what bench_engine can call to print the peer beside the product's figure in the
same run (after `prepare_peer` on its simulator).

c7n's ArmResourceManager reads Resource Manager's Providers - Get (``GET
/subscriptions/{id}/providers/{namespace}``) before every GET by id to choose the resource's API
version; the simulator serves it (sim/providers.py), recorded, authorised and throttled as any read.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import arm_docs as docs  # noqa: E402

from remediation.credentials import LoopbackCredential  # noqa: E402
from sim import ArmSimulator  # noqa: E402

PEERS_PYTHON = ROOT / ".peers-venv" / "bin" / "python"
DRIVER = ROOT / "bench" / "c7n_peer_driver.py"
# The peer's principal (its token's appid and oid), apart from the remediator's and the estate's.
PEER_PRINCIPAL = "00000000-0000-0000-0000-0000000c7c7c"
PEER_SET = "peer-open"
WARMUP = 20
POLICY: dict[str, Any] = {
    "name": "vmss-no-public-ip",
    "resource": "azure.vmss",
    "mode": {
        "type": "azure-event-grid",
        "events": [{"resourceProvider": "Microsoft.Compute/virtualMachineScaleSets", "event": "write"}],
    },
    "filters": [{"tag:remediation.mode": "strip"}],
    "actions": [{"type": "tag", "tag": "public-ip-flagged", "value": "true"}],
}
# The API versions the provider document lists per namespace (newest first, as ARM lists them; c7n
# takes the first that is not a preview): the versions the simulator was checked against.
API_VERSIONS = {
    "Microsoft.Compute": ["2024-11-01"],
    "Microsoft.Network": ["2024-05-01"],
    "Microsoft.Insights": ["2022-10-01"],
}
COLUMNS = ("threads", "events", "seconds", "events/s", "CPU ms/event", "events/s of CPU", "ARM req/event")
_PROVIDER_PATH = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/providers/(?P<ns>[^/]+)/?$", re.IGNORECASE)


def peer_token() -> str:
    return LoopbackCredential(PEER_PRINCIPAL, "cloud-custodian (benchmark peer)").get_token().token


@dataclass(frozen=True)
class Seen:
    """One request in the simulator's log, as much of it as counting needs."""

    method: str
    path: str
    resource_type: str
    status: int
    principal: str
    received: datetime


RequestLog = Callable[[], Sequence[Seen]]


def prepare_peer(arm: ArmSimulator, name: str = PEER_SET) -> str:
    """Make `arm` ready for the peer: Reader for its principal at the subscription (it only reads;
    a write would be refused and show in the log), and one unrestricted scale set (seeded: no
    request, no event) unless it exists. Returns the set's id."""
    arm.grant(PEER_PRINCIPAL, "Reader", f"/subscriptions/{docs.SUB}")
    resource_id = docs.set_id(name)
    if arm.get_resource(resource_id) is None:
        arm.seed(docs.scale_set(name, 0, None))
    return resource_id


def simulator_log(arm: ArmSimulator) -> RequestLog:
    """The request log of an in-process simulator (`arm.requests()`)."""

    def read() -> list[Seen]:
        return [
            Seen(r.method, r.path, r.resource_type, r.status, r.principal, r.received) for r in arm.requests()
        ]

    return read


def http_log(endpoint: str, ca_bundle: str) -> RequestLog:
    """The same log over HTTP (`/_sim/requests`), for a simulator in another process."""

    def read() -> list[Seen]:
        status, body = _get(endpoint, ca_bundle, "/_sim/requests")
        if status != 200:
            raise RuntimeError(f"/_sim/requests answered {status}")
        return [
            Seen(
                r["method"],
                r["path"],
                r["resourceType"],
                r["status"],
                r["principal"],
                datetime.fromisoformat(r["received"].replace("Z", "+00:00")),
            )
            for r in body["value"]
        ]

    return read


def _get(endpoint: str, ca_bundle: str, path: str) -> tuple[int, Any]:
    """A GET with the peer's token (an ARM path or `/_sim/`): status and JSON body."""
    context = ssl.create_default_context(cafile=ca_bundle)
    request = urllib.request.Request(
        f"{endpoint}{path}?api-version=2022-09-01", headers={"Authorization": f"Bearer {peer_token()}"}
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def peers_installed() -> bool:
    return PEERS_PYTHON.exists()


def measure_peer(
    endpoint: str,
    ca_bundle: str,
    *,
    resource_id: str | None = None,
    events: int = 2000,
    concurrency: int = 16,
    max_seconds: float = 300.0,
    request_log: RequestLog | None = None,
) -> dict[str, Any]:
    """c7n-azure's event mode on `events` no-op events for `resource_id` (a set without the
    `remediation.mode` tag, by default `prepare_peer`'s) in one .peers-venv process. Returns
    events_per_s, cpu_ms_per_event and arm_requests_per_event (the peer's requests in the
    simulator's log: `request_log`, by default `/_sim/requests`), with the counts behind them."""
    if not peers_installed():
        raise FileNotFoundError(f"{PEERS_PYTHON} is missing: run `make bench-peers`")
    resource_id = resource_id or docs.set_id(PEER_SET)
    read_log = request_log or http_log(endpoint, ca_bundle)
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as scratch:
        events_file = Path(scratch) / "events.jsonl"
        # Distinct ids and correlation ids, as distinct writes raise them.
        lines = [json.dumps(docs.write_event(resource_id)) for _ in range(WARMUP + events)]
        events_file.write_text("\n".join(lines), encoding="utf-8")
        run_file = Path(scratch) / "run.json"
        run_file.write_text(
            json.dumps(
                {
                    "endpoint": endpoint,
                    "ca_bundle": ca_bundle,
                    "token": peer_token(),
                    "subscription": docs.SUB,
                    "tenant": "00000000-0000-0000-0000-000000000000",
                    "resource_id": resource_id,
                    "policy": POLICY,
                    "events_file": str(events_file),
                    "warmup": WARMUP,
                    "concurrency": concurrency,
                    "max_seconds": max_seconds,
                }
            ),
            encoding="utf-8",
        )
        # No proxy between the peer and the loopback simulator; its CA only.
        env = {**os.environ, "REQUESTS_CA_BUNDLE": ca_bundle, "NO_PROXY": "127.0.0.1,localhost"}
        done = subprocess.run(
            [str(PEERS_PYTHON), str(DRIVER), str(run_file)],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            timeout=max_seconds + 300,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"the peer's driver failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    window = _window(result["window"])
    requests = [r for r in read_log() if r.principal.lower() == PEER_PRINCIPAL and _within(r, window)]
    handled = result["events"]
    kinds = Counter(f"{r.method} {_kind(r)} {r.status}" for r in requests)
    sample_window = _window(result["sample_window"])
    result.update(
        events_per_s=handled / result["seconds"],
        cpu_ms_per_event=result["cpu_seconds"] * 1000 / handled,
        arm_requests_per_event=len(requests) / handled,
        throttled_per_event=sum(1 for r in requests if r.status == 429) / handled,
        arm_writes=sum(1 for r in requests if r.method != "GET"),
        arm_requests_by_kind={kind: count / handled for kind, count in sorted(kinds.items())},
        one_event=[
            f"{r.method} {r.path} -> {r.status} ({r.resource_type})"
            for r in read_log()
            if r.principal.lower() == PEER_PRINCIPAL and _within(r, sample_window)
        ],
    )
    return result


def _window(window: dict[str, str]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(window["start"]), datetime.fromisoformat(window["end"])


def _within(record: Seen, window: tuple[datetime, datetime]) -> bool:
    return window[0] <= record.received <= window[1]


def _kind(record: Seen) -> str:
    if _PROVIDER_PATH.match(record.path):
        return "provider"
    return record.resource_type or record.path


def check_noop(result: dict[str, Any], resource_id: str) -> list[str]:
    """What says the peer's events were not all handled as no-ops through its event path."""
    problems = []
    if result["warmup_no_resources"] != WARMUP or result["setup_errors"]:
        problems.append(
            f"the warm-up: {result['warmup_no_resources']} no-ops, {result['setup_errors']} errors"
        )
    if result["no_resources"] != result["events"]:
        problems.append(f"{result['no_resources']} of {result['events']} events ended 'no resources found'")
    if result["errors"]:
        problems.append(f"{result['errors']} errors: {result['error_messages']}")
    if result["arm_writes"]:
        problems.append(f"{result['arm_writes']} ARM writes")
    if [i.lower() for i in result["control_found"]] != [resource_id.lower()]:
        problems.append(f"the control policy found {result['control_found']}, not the set")
    if result["events"] < result["offered"]:
        problems.append(f"only {result['events']} of {result['offered']} events within the time bound")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument(
        "--max-seconds", type=float, default=300.0, help="per run, bounds the measured events"
    )
    parser.add_argument(
        "--throttling",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ARM's token buckets in the simulator (default: on, as in bench_engine; off shows the "
        "handler's own speed rather than ARM's read limit)",
    )
    args = parser.parse_args()
    if not peers_installed():
        print(f"{PEERS_PYTHON.relative_to(ROOT)} is missing: run `make bench-peers` first", file=sys.stderr)
        return 2

    results: list[dict[str, Any]] = []
    problems: list[str] = []
    # As bench_engine's no-op path: authorisation and throttling on (the simulator's defaults).
    with ArmSimulator(
        provision_delay_s=1.0, lro_duration_s=0.1, page_size=100, throttling=args.throttling
    ) as arm:
        resource_id = prepare_peer(arm)
        for concurrency in args.concurrency:
            result = measure_peer(
                arm.endpoint,
                arm.ca_bundle,
                resource_id=resource_id,
                events=args.events,
                concurrency=concurrency,
                max_seconds=args.max_seconds,
                request_log=simulator_log(arm),
            )
            results.append(result)
            problems += [f"concurrency {concurrency}: {p}" for p in check_noop(result, resource_id)]

    versions = results[0]["versions"]
    print(
        "peer: Cloud Custodian c7n {c7n} / c7n-azure {c7n-azure} (azure-core {azure-core}, "
        "azure-mgmt-resource {azure-mgmt-resource}), mode azure-event-grid, its Functions entry in one "
        "process; no-op events for one unrestricted scale set, against the ARM simulator".format(**versions)
    )
    print(" | ".join(COLUMNS))
    for r in results:
        cells = (
            f"{r['concurrency']}",
            f"{r['events']}",
            f"{r['seconds']:.2f}",
            f"{r['events_per_s']:.1f}",
            f"{r['cpu_ms_per_event']:.1f}",
            f"{1000 / r['cpu_ms_per_event']:.0f}",
            f"{r['arm_requests_per_event']:.2f}",
        )
        print(" | ".join(f"{cell:>{len(column)}}" for cell, column in zip(cells, COLUMNS, strict=True)))
    for r in results:
        kinds = ", ".join(f"{kind}: {count:.2f}" for kind, count in r["arm_requests_by_kind"].items())
        print(f"  {r['concurrency']} threads, ARM requests per event: {kinds}; writes {r['arm_writes']}")
    print(
        f"  c7n authenticated (built a session) {results[0]['authenticated']} times for "
        f"{results[0]['events']} events; the control policy found {results[0]['control_found']}"
    )
    print("  the simulator's log for one event:")
    for line in results[0]["one_event"]:
        print(f"    {line}")
    for problem in problems:
        print(f"peer run not as intended: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
