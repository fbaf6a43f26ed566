"""Request hooks (acting at the point a request's work is done) and requests' arrival time.

Every ordering here is made by events a test waits on, never by sleeping: a hook that blocks
holds the answer back for as long as the test needs, on any machine.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
import urllib.request
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.rest import HttpRequest
from sim_helpers import CONVENIENT, RG, Clients, flex_body, make_clients, owned, pip_body, rid

from sim import ArmSimulator, Faults, RequestRecord

PIP = "Microsoft.Network/publicIPAddresses"
VMSS = "Microsoft.Compute/virtualMachineScaleSets"
AUTOSCALE = "Microsoft.Insights/autoscalesettings"
API = "?api-version=2024-05-01"
WAIT_S = 30  # a bound for waits on events, never reached unless something is broken


def _put(clients: Clients, name: str, **options: Any) -> Any:
    request = HttpRequest("PUT", f"{rid(PIP, name)}{API}", json=pip_body().as_dict())
    return clients.network.send_request(request, **options)


def _autoscale_setting(target: str) -> dict[str, Any]:
    capacity = {"minimum": "0", "maximum": "3", "default": "0"}
    return {
        "location": "westeurope",
        "properties": {
            "enabled": True,
            "targetResourceUri": target,
            "profiles": [{"name": "default", "capacity": capacity, "rules": []}],
        },
    }


def test_a_hook_runs_after_the_work_and_before_the_client_has_its_answer(
    sim: ArmSimulator, clients: Clients
) -> None:
    answers: list[int] = []
    seen: list[tuple[str, int, int, bool]] = []

    def hook(record: RequestRecord) -> None:
        # How many answers the client had when this request's work was done.
        name = record.path.rsplit("/", 1)[1]
        stored = sim.requests()[-1] == record
        seen.append((name, record.status, len(answers), stored and sim.get_resource(record.path) is not None))

    sim.add_request_hook(hook)
    try:
        for i in range(3):
            answers.append(_put(clients, f"pip-{i}", retry_total=0).status_code)
    finally:
        sim.remove_request_hook(hook)
    puts = [entry for entry in seen if entry[0].startswith("pip-")]
    assert puts == [("pip-0", 201, 0, True), ("pip-1", 201, 1, True), ("pip-2", 201, 2, True)]
    assert answers == [201, 201, 201]


def test_a_blocking_hook_holds_the_answer_back_while_the_client_waits(
    sim: ArmSimulator, clients: Clients
) -> None:
    entered, release = threading.Event(), threading.Event()
    answer: list[int] = []

    def hook(record: RequestRecord) -> None:
        if record.method == "PUT":
            entered.set()
            release.wait(WAIT_S)

    def client() -> None:
        answer.append(_put(clients, "pip-held", retry_total=0).status_code)

    sim.add_request_hook(hook)
    thread = threading.Thread(target=client)
    try:
        thread.start()
        assert entered.wait(WAIT_S)
        # ARM did the write and logged it; the client is still waiting for its answer.
        assert sim.get_resource(rid(PIP, "pip-held")) is not None
        assert [r.status for r in sim.requests() if r.method == "PUT"] == [201]
        assert answer == [] and thread.is_alive()
    finally:
        release.set()
        thread.join(WAIT_S)
        sim.remove_request_hook(hook)
    assert answer == [201]


def test_hooks_run_before_an_injected_drop_or_delay(sim: ArmSimulator, clients: Clients) -> None:
    from azure.core.exceptions import ServiceResponseError

    called: list[tuple[int, float]] = []

    def hook(record: RequestRecord) -> None:
        called.append((record.status, time.monotonic()))

    sim.add_request_hook(hook)
    try:
        sim.set_faults(Faults(seed=1, rate_drop_after_work=1.0, max_faults=1))
        with pytest.raises(ServiceResponseError):
            _put(clients, "pip-dropped", retry_total=0)
        sim.set_faults(Faults(latency_s=0.3, only_methods=frozenset({"GET"})))
        get = HttpRequest("GET", f"{rid(PIP, 'pip-dropped')}{API}")
        assert clients.network.send_request(get, retry_total=0).status_code == 200
        answered = time.monotonic()
    finally:
        sim.set_faults(None)
        sim.remove_request_hook(hook)
    (dropped, _), (read, hooked) = called
    assert dropped == 0 and read == 200  # the drop was already decided, and the hook saw it
    assert answered - hooked >= 0.3  # the injected latency came after the hook


def test_hooks_survive_reset_and_a_raising_hook_breaks_nothing(
    sim: ArmSimulator, clients: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def broken(record: RequestRecord) -> None:
        raise RuntimeError("harness bug")

    def recording(record: RequestRecord) -> None:
        calls.append(record.method)

    sim.add_request_hook(broken)
    sim.add_request_hook(recording)
    try:
        sim.reset()
        with caplog.at_level(logging.ERROR, logger="sim.hooks"):
            assert _put(clients, "pip-r", retry_total=0).status_code == 201
        sim.remove_request_hook(recording)
        sim.remove_request_hook(recording)  # not registered any more: nothing happens
        assert _put(clients, "pip-s", retry_total=0).status_code == 201
    finally:
        sim.remove_request_hook(broken)
        sim.remove_request_hook(recording)
    assert calls == ["PUT"]
    assert any("harness bug" in (r.exc_text or "") for r in caplog.records)
    assert [r.status for r in sim.requests() if r.method == "PUT"] == [201, 201]


def test_autoscale_writes_call_hooks_too(sim: ArmSimulator, clients: Clients) -> None:
    target = rid(VMSS, "web")
    clients.compute.virtual_machine_scale_sets.begin_create_or_update(RG, "web", flex_body(0)).result()
    setting = HttpRequest("PUT", f"{rid(AUTOSCALE, 'web-scale')}?api-version=2022-10-01")
    setting.set_json_body(_autoscale_setting(target))
    assert clients.compute.send_request(setting).status_code == 201
    seen: list[RequestRecord] = []
    sim.add_request_hook(seen.append)
    try:
        sim.autoscale_to(target, 1)
    finally:
        sim.remove_request_hook(seen.append)
    [record] = seen
    assert record.method == "PATCH" and record.principal == "Microsoft.Insights/autoscaleSettings"
    assert record.received <= record.time and record is sim.requests()[-1]


# ---------------------------------------------------------------------------- arrival time


def test_received_is_the_arrival_before_the_work_and_served_over_http() -> None:
    # A synchronous write (an autoscale setting) hands its event to the sinks in the request's own
    # thread: a sink that blocks makes the work take as long as the test wants, and in the meantime
    # a read arrives after the write and is answered before it.
    entered, release = threading.Event(), threading.Event()

    def slow_sink(event: dict[str, Any]) -> None:
        entered.set()
        release.wait(WAIT_S)

    with owned(ArmSimulator(**CONVENIENT, lro_duration_s=0.0)) as sim:
        sim.add_event_sink(slow_sink)
        clients = make_clients(sim)
        setting = HttpRequest("PUT", f"{rid(AUTOSCALE, 'slow')}?api-version=2022-10-01")
        setting.set_json_body(_autoscale_setting(rid(VMSS, "any")))
        answers: list[int] = []
        before = datetime.now(UTC)
        writer = threading.Thread(
            target=lambda: answers.append(clients.compute.send_request(setting).status_code)
        )
        writer.start()
        try:
            assert entered.wait(WAIT_S)
            get = HttpRequest("GET", f"{rid(PIP, 'none')}{API}")
            assert clients.network.send_request(get, retry_total=0).status_code == 404
        finally:
            release.set()
            writer.join(WAIT_S)
        read, write = sim.requests()  # in the order they were answered
        context = ssl.create_default_context(cafile=sim.ca_bundle)
        with urllib.request.urlopen(f"{sim.endpoint}/_sim/requests", context=context, timeout=WAIT_S) as raw:
            served = json.loads(raw.read())["value"]
    assert answers == [201]
    assert (read.method, write.method) == ("GET", "PUT")
    assert before <= write.received < read.received <= read.time < write.time
    assert all(r.received <= r.time for r in sim.requests())
    assert [entry["received"] for entry in served] == [
        r.received.isoformat().replace("+00:00", "Z") for r in (read, write)
    ]


def test_a_record_made_without_arrival_time_takes_its_answer_time() -> None:
    now = datetime.now(UTC)
    record = RequestRecord(method="GET", path="/x", resource_type="", operation="", status=200, time=now)
    assert record.received == now


def test_held_operations_stay_in_progress_until_released(sim: ArmSimulator, clients: Clients) -> None:
    with sim.operations_held():
        poller = clients.network.public_ip_addresses.begin_create_or_update(RG, "held", pip_body())
        for _ in range(3):  # however long the test takes here, the operation does not complete
            doc = sim.get_resource(rid(PIP, "held"))
            assert doc is not None and doc["properties"]["provisioningState"] == "Updating"
            assert not poller.done()
    assert poller.result(timeout=WAIT_S).provisioning_state == "Succeeded"


def test_a_retried_call_is_recorded_with_one_client_request_id(sim: ArmSimulator, clients: Clients) -> None:
    sim.set_faults(Faults(rate_500=1.0, max_faults=1, only_methods=frozenset({"PUT"})))
    try:
        assert _put(clients, "retried", retry_backoff_factor=0).status_code == 201  # the SDK retried the 500
    finally:
        sim.set_faults(None)
    attempts = [r for r in sim.requests() if r.method == "PUT"]
    assert [r.status for r in attempts] == [500, 201]
    assert attempts[0].client_request_id and attempts[0].client_request_id == attempts[1].client_request_id
