"""The benchmark peer's process: Cloud Custodian's Azure event mode handling queued Event Grid events.

    .peers-venv/bin/python bench/c7n_peer_driver.py RUN.json

Run by bench/bench_peers.py under .peers-venv (c7n and c7n-azure, bench/peers-requirements.txt),
never under the product's .venv; it imports nothing of the project. RUN.json says where the ARM
simulator is (``endpoint``, ``ca_bundle``), the bearer token and subscription to use, the policy,
and the file of Event Grid events (JSON lines) with how many of them warm up (not measured).

What runs is c7n-azure's own Functions entry for a policy of mode ``azure-event-grid``: its
``function.py``, copied unchanged into a function folder laid out as c7n's FunctionPackage lays it
out (``<policy>/function.py``, ``config.json``, ``auth.json``), imported, and called once per event
with the queue message Event Grid's storage-queue subscription would hold (c7n's event mode
subscribes a storage queue to Event Grid; the Functions host's queue trigger calls ``main``). Per
message c7n's handler loads the policy file, builds the provider and a session, extracts the
resource id from the event's subject, reads the provider's API versions and the resource by id
from ARM, runs the filters, and (no match) does nothing.

Pointing it at the simulator: c7n-azure knows only the four named clouds of msrestazure
(``Azure.region_to_cloud``) and takes ARM's base URL from the cloud's
``endpoints.resource_manager``; a copy of the public cloud with the simulator's endpoint is
registered under a name of its own, which the policy selects with ``execution-options: regions``
(what c7n's ``--region`` sets). The token is the auth file's ``access_token`` (c7n's own way for a
fixed token). TLS: azure-core's requests transport verifies with ``REQUESTS_CA_BUNDLE``, set to
the simulator's CA bundle.

Measured, in this process: wall time and process CPU time (every thread) over the measured
events only, after the imports, the function folder's set-up, a control event and the warm-up.
Prints one JSON object on stdout.
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

CLOUD_NAME = "LocalArmSimulator"


class LogCounter(logging.Handler):
    """Counts what c7n logs per event (its outcome is only in its log): nothing is written out."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.no_resources = 0
        self.authenticated = 0
        self.errors: list[str] = []
        self.error_count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self.error_count += 1
            if len(self.errors) < 5:
                self.errors.append(f"{record.name}: {record.getMessage()}")
        elif record.name == "custodian.policy" and "no resources found" in str(record.msg):
            self.no_resources += 1
        elif record.name == "custodian.azure.session" and str(record.msg).startswith("Authenticated"):
            self.authenticated += 1


def register_cloud(endpoint: str) -> None:
    """The public cloud with ARM at the simulator, under a name the policy's regions select."""
    azure_cloud = importlib.import_module("msrestazure.azure_cloud")
    provider = importlib.import_module("c7n_azure.provider")
    cloud = copy.deepcopy(azure_cloud.AZURE_PUBLIC_CLOUD)
    cloud.name = CLOUD_NAME
    cloud.endpoints.resource_manager = endpoint.rstrip("/") + "/"
    provider.Azure.region_to_cloud[CLOUD_NAME] = cloud


def install_function(root: Path, policy: dict[str, Any], auth: dict[str, str]) -> ModuleType:
    """A function folder as c7n's FunctionPackage builds it, with c7n-azure's function.py unchanged."""
    # The file FunctionPackage packs (c7n_azure/function.py), found without importing it.
    entry = importlib.util.find_spec("c7n_azure.function")
    if entry is None or entry.origin is None:
        raise RuntimeError(
            "c7n-azure has no function.py: not the c7n-azure bench/peers-requirements.txt pins"
        )
    folder = root / policy["name"]
    folder.mkdir()
    shutil.copy(entry.origin, folder / "function.py")
    (folder / "__init__.py").write_text("")
    (folder / "config.json").write_text(json.dumps({"policies": [policy]}, indent=2))
    (folder / "auth.json").write_text(json.dumps(auth, indent=2))
    spec = importlib.util.spec_from_file_location(f"{policy['name']}_function", folder / "function.py")
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {folder / 'function.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # its import-time entry.initialize_azure(), as in Functions
    return module


def now() -> str:
    return datetime.now(UTC).isoformat()


class Peer:
    """c7n's function folders for one run (the no-op policy and its control) and what they logged."""

    def __init__(self, run: dict[str, Any], work: Path) -> None:
        self.counter = LogCounter()
        root_logger = logging.getLogger()
        root_logger.addHandler(self.counter)
        root_logger.setLevel(logging.INFO)  # the Functions worker's level: c7n's info records are made
        self.queue = importlib.import_module("azure.functions.queue")
        register_cloud(run["endpoint"])
        auth = {
            "access_token": run["token"],
            "subscription_id": run["subscription"],
            "tenant_id": run["tenant"],
        }
        options = {"regions": [CLOUD_NAME], "output_dir": str(work / "output")}
        noop_policy = copy.deepcopy(run["policy"])
        noop_policy["mode"]["execution-options"] = options
        # The control: the same event and mode, a filter the set matches and no action. It shows that
        # the resource is really read and filtered (it must be found, once).
        control_policy = copy.deepcopy(noop_policy)
        control_policy["name"] = f"{noop_policy['name']}-control"
        control_policy["filters"] = [{"type": "value", "key": "id", "value": run["resource_id"]}]
        control_policy.pop("actions", None)
        self.noop = install_function(work, noop_policy, auth)
        self.control = install_function(work, control_policy, auth)
        self.control_output = work / "output" / control_policy["name"] / "resources.json"

    def deliver(self, function: ModuleType, body: str) -> None:
        """What the queue trigger does with a message: c7n's ``main`` on it."""
        message = self.queue.QueueMessage(id=str(uuid.uuid4()), body=body.encode(), dequeue_count=1)
        function.main(message)

    def control_found(self, body: str) -> list[str]:
        self.deliver(self.control, body)
        if not self.control_output.exists():
            return []
        return [r.get("id") for r in json.loads(self.control_output.read_text(encoding="utf-8"))]


def measure(peer: Peer, bodies: list[str], concurrency: int, max_seconds: float) -> dict[str, Any]:
    """The no-op policy on every body (threads: the worker's thread pool), until `max_seconds`."""
    deadline = time.perf_counter() + max_seconds

    def bounded(body: str) -> bool:
        if time.perf_counter() > deadline:
            return False
        peer.deliver(peer.noop, body)
        return True

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        start = now()
        cpu_before, started = time.process_time(), time.perf_counter()
        if concurrency == 1:
            handled = sum(1 for body in bodies if bounded(body))
        else:
            handled = sum(pool.map(bounded, bodies))
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_before
        end = now()
    return {
        "events": handled,
        "offered": len(bodies),
        "concurrency": concurrency,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "window": {"start": start, "end": end},
    }


def main() -> int:
    run = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    os.environ["REQUESTS_CA_BUNDLE"] = run["ca_bundle"]
    work = Path(tempfile.mkdtemp(prefix="c7n-peer-"))
    try:
        peer = Peer(run, work)
        bodies = Path(run["events_file"]).read_text(encoding="utf-8").splitlines()
        warmup, measured = bodies[: run["warmup"]], bodies[run["warmup"] :]
        control_found = peer.control_found(bodies[0])
        sample: dict[str, str] = {}
        for body in warmup:  # the last one's requests are shown as one event's
            sample["start"] = now()
            peer.deliver(peer.noop, body)
            sample["end"] = now()
        counter = peer.counter
        setup = {"warmup_no_resources": counter.no_resources, "setup_errors": counter.error_count}
        counter.no_resources = counter.authenticated = counter.error_count = 0
        result = measure(peer, measured, int(run["concurrency"]), float(run["max_seconds"]))
        result.update(
            setup,
            sample_window=sample,
            no_resources=counter.no_resources,
            authenticated=counter.authenticated,
            errors=counter.error_count,
            error_messages=counter.errors,
            control_found=control_found,
            versions={
                name: importlib.metadata.version(name)
                for name in ("c7n", "c7n-azure", "azure-core", "azure-mgmt-resource", "requests")
            },
            python=sys.version.split()[0],
        )
        print(json.dumps(result))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
