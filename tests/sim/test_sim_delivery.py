"""Event delivery: CloudEvents, webhook and Storage queue sinks, duplicates and reordering (seeded)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from sim_helpers import CONVENIENT, RG, SUB, make_clients, owned, pip_body

from sim import ArmSimulator, EventSchema

FAST: dict[str, Any] = {"lro_duration_s": 0.0, "provision_delay_s": 0.0}


def _writes(sim: ArmSimulator, count: int) -> None:
    clients = make_clients(sim)
    for i in range(count):
        clients.network.public_ip_addresses.begin_create_or_update(RG, f"pip-{i}", pip_body()).result()
    sim.wait_idle(5)


def test_cloud_events_schema_per_sink() -> None:
    grid: list[dict[str, Any]] = []
    cloud: list[dict[str, Any]] = []
    with owned(ArmSimulator(**CONVENIENT, **FAST)) as sim:
        sim.add_event_sink(grid.append)
        sim.add_event_sink(cloud.append, schema=EventSchema.CLOUD_EVENTS)
        _writes(sim, 1)
    [event] = cloud
    assert event["specversion"] == "1.0"
    assert event["type"] == "Microsoft.Resources.ResourceWriteSuccess"
    assert event["source"] == f"/subscriptions/{SUB}"
    assert event["id"] == grid[0]["id"] and event["subject"] == grid[0]["subject"]
    assert event["time"] == grid[0]["eventTime"] and event["data"] == grid[0]["data"]


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        _Collector.received.append(
            (self.headers.get("Content-Type", ""), json.loads(self.rfile.read(length)))
        )
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def webhook() -> Iterator[str]:
    _Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/events"
    server.shutdown()
    server.server_close()


def test_webhook_sink_posts_arrays_in_either_schema(webhook: str) -> None:
    with owned(ArmSimulator(**CONVENIENT, **FAST)) as sim:
        sim.add_webhook_sink(webhook)
        sim.add_webhook_sink(webhook, schema=EventSchema.CLOUD_EVENTS)
        _writes(sim, 2)
    grid = [body for kind, body in _Collector.received if kind == "application/json"]
    cloud = [
        body for kind, body in _Collector.received if kind.startswith("application/cloudevents-batch+json")
    ]
    assert len(grid) == 2 and len(cloud) == 2
    assert all(isinstance(body, list) and len(body) == 1 for body in grid + cloud)
    assert grid[0][0]["eventType"] == "Microsoft.Resources.ResourceWriteSuccess"
    assert cloud[0][0]["specversion"] == "1.0"
    with pytest.raises(ValueError, match="loopback"):
        ArmSimulator().add_webhook_sink("http://example.com/hook")


def test_storage_queue_sink(local_azure: Any) -> None:
    from azure.storage.queue import QueueClient

    connection = local_azure.azurite.connection_string
    with owned(ArmSimulator(**CONVENIENT, **FAST)) as sim:
        sim.add_queue_sink(connection, "sim-events", schema=EventSchema.CLOUD_EVENTS)
        _writes(sim, 2)
    queue = QueueClient.from_connection_string(connection, "sim-events")
    try:
        messages = [json.loads(m.content) for m in queue.receive_messages(max_messages=10)]
    finally:
        queue.delete_queue()
        queue.close()
    assert len(messages) == 2 and {m["type"] for m in messages} == {
        "Microsoft.Resources.ResourceWriteSuccess"
    }


def _delivered(**switches: Any) -> list[str]:
    # Held events are released 0.2 simulated seconds after the first is held: at a tenth of real
    # time that is 2 s, far longer than 8 writes take on any machine, so no release falls mid-run
    # (where it would fall depends on the machine's speed) and only the seed decides the order.
    received: list[dict[str, Any]] = []
    with owned(ArmSimulator(**CONVENIENT, **FAST, time_scale=0.1, **switches)) as sim:
        sim.add_event_sink(received.append)
        _writes(sim, 8)
    return [event["subject"].rsplit("/", 1)[1] for event in received]


def test_duplicates_and_reordering_are_seeded() -> None:
    in_order = [f"pip-{i}" for i in range(8)]
    assert _delivered() == in_order
    duplicated = _delivered(duplicate_rate=0.5, event_seed=4)
    assert len(duplicated) > 8 and sorted(set(duplicated)) == sorted(in_order)
    assert duplicated == _delivered(duplicate_rate=0.5, event_seed=4)
    shuffled = _delivered(reorder_window=4, event_seed=2)
    assert sorted(shuffled) == sorted(in_order) and shuffled != in_order
    assert shuffled == _delivered(reorder_window=4, event_seed=2)
