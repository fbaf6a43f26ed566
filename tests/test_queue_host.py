"""The local Functions host's Storage-queue trigger (``localazure.queues``) and its host processes
(``localazure.functions_host``), against Azurite. Each test specifies one point of Azure's
contract and fails if the mechanism behind it is taken away. No test waits for time to pass as a
way to synchronise: they wait for events (a function started, a lease renewed, a listener that
paused), with generous timeouts as upper bounds only."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from localazure.azurite import PROJECT_ROOT
from localazure.eventgrid import EventGridPlayer
from localazure.functions_host import HostPool
from localazure.queues import (
    ENV_PREFIX,
    QueueHostSettings,
    QueueListener,
    parse_timespan,
    peek_poison,
)
from localazure.stack import LocalAzure
from remediation.audit import AuditLog
from remediation.model import RecordKind
from remediation.settings import Settings

TESTS = Path(__file__).resolve().parent


def fast(**changes: Any) -> QueueHostSettings:
    """Azure's defaults, but an empty queue is polled again within 0.2 s (tests wait less)."""
    return replace(QueueHostSettings(max_polling_interval_s=0.2), **changes)


# ----- a tiny app, for the host processes (they import it as test_queue_host:test_app)

test_app = func.FunctionApp()


def _mark(fact: dict[str, Any]) -> None:
    with Path(os.environ["TEST_MARKS"]).open("a", encoding="utf-8") as marks:
        marks.write(json.dumps({**fact, "pid": os.getpid(), "time": time.time()}) + "\n")


@test_app.function_name("hang_once")
@test_app.queue_trigger(arg_name="message", queue_name="%TEST_QUEUE%", connection="TestStorage")
def hang_once(message: func.QueueMessage) -> None:
    """The first delivery hangs (until its host is killed; bounded); the next returns."""
    _mark(
        {"function": "hang_once", "dequeue_count": message.dequeue_count, "body": message.get_body().decode()}
    )
    if message.dequeue_count == 1:
        threading.Event().wait(120)


@test_app.function_name("on_event")
@test_app.event_grid_trigger(arg_name="event")
def on_event(event: func.EventGridEvent) -> None:
    _mark({"function": "on_event", "id": event.id})
    data = event.get_json()
    if isinstance(data, dict) and data.get("fail"):
        raise RuntimeError("the function failed")


# ----- helpers and fixtures


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    """Wait until ``condition`` holds (checked every 20 ms); the timeout is an upper bound only."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def connection_string(local_azure: LocalAzure) -> str:
    return local_azure.azurite.connection_string


@pytest.fixture
def queue(connection_string: str) -> Iterator[QueueClient]:
    """A new queue, and a client that sends as the app does (base64 text)."""
    client = QueueClient.from_connection_string(
        connection_string, f"q-{uuid.uuid4().hex[:12]}", message_encode_policy=TextBase64EncodePolicy()
    )
    client.create_queue()
    with client:
        yield client


def raw(queue: QueueClient, connection_string: str) -> QueueClient:
    """The same queue without encoding: what is on the wire."""
    return QueueClient.from_connection_string(connection_string, queue.queue_name)


def count(queue: QueueClient) -> int:
    return int(queue.get_queue_properties().approximate_message_count or 0)


def marks(path: Path) -> list[dict[str, Any]]:
    return (
        [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []
    )


# ----- settings


def test_settings_are_azures_defaults_when_host_json_has_no_queues_section(tmp_path: Path) -> None:
    host_json = tmp_path / "host.json"
    host_json.write_text(json.dumps({"version": "2.0", "extensions": {"http": {}}}), encoding="utf-8")
    defaults = QueueHostSettings.from_host_json(host_json, environ={})
    project = QueueHostSettings.from_host_json(environ={})  # default: the project's own host.json
    assert project == QueueHostSettings.from_host_json(PROJECT_ROOT / "host.json", environ={})
    assert (defaults.batch_size, defaults.new_batch_threshold, defaults.max_dequeue_count) == (16, 8, 5)
    assert (defaults.max_polling_interval_s, defaults.visibility_timeout_s) == (60.0, 0.0)
    assert defaults.message_encoding == "base64"
    assert defaults.max_concurrency == 24


@pytest.mark.parametrize(
    ("polling", "seconds"), [("00:00:02", 2.0), (2000, 2.0), ("00:00:00.250", 0.25), ("1500", 1.5)]
)
def test_settings_are_read_from_host_json_in_timespan_and_millisecond_forms(
    tmp_path: Path, polling: object, seconds: float
) -> None:
    host_json = tmp_path / "host.json"
    section = {
        "BatchSize": 8,
        "maxPollingInterval": polling,
        "visibilityTimeout": "00:00:30",
        "maxDequeueCount": 3,
    }
    host_json.write_text(json.dumps({"version": "2.0", "extensions": {"queues": section}}), encoding="utf-8")
    settings = QueueHostSettings.from_host_json(host_json, environ={})
    assert settings == QueueHostSettings(8, 4, seconds, 30.0, 3)  # newBatchThreshold: batchSize / 2
    overridden = QueueHostSettings.from_host_json(
        host_json,
        environ={f"{ENV_PREFIX}newBatchThreshold": "1", f"{ENV_PREFIX}visibilityTimeout": "00:01:00"},
    )
    assert (overridden.new_batch_threshold, overridden.visibility_timeout_s) == (1, 60.0)


@pytest.mark.parametrize(
    "section",
    [{"batchSize": 33}, {"batchSize": 0}, {"maxPollingInterval": "00:00:00.050"}, {"visibilityTimeout": 30}],
)
def test_settings_out_of_azures_range_are_refused(section: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"batchSize|maxPollingInterval|visibilityTimeout"):
        QueueHostSettings.from_section(section)


def test_timespans_parse_as_dotnet_does() -> None:
    assert parse_timespan("1.02:03:04.5", "x") == 86400 + 2 * 3600 + 3 * 60 + 4.5
    assert parse_timespan("00:10", "x") == 600.0
    assert parse_timespan("2", "x") == 2 * 86400.0  # digits alone are days, as .NET reads them
    with pytest.raises(ValueError, match="TimeSpan"):
        parse_timespan("00:61:00", "x")


# ----- the listener


def test_the_function_gets_the_workers_queue_message_and_success_deletes_it(
    queue: QueueClient, connection_string: str
) -> None:
    sent = queue.send_message('{"scale_set": "vmss-1", "note": "é ✓"}')
    got: list[func.QueueMessage] = []
    listener = QueueListener(connection_string, queue.queue_name, got.append, settings=fast())
    report = listener.drain(idle_s=0.3, timeout_s=60)
    assert (report.delivered, report.failed, report.poisoned, report.timed_out) == (1, 0, 0, False)
    [message] = got
    assert isinstance(message, func.QueueMessage)
    assert message.id == sent.id
    assert message.get_body().decode() == '{"scale_set": "vmss-1", "note": "é ✓"}'  # decoded from base64
    assert message.dequeue_count == 1 and message.pop_receipt
    assert message.insertion_time and message.expiration_time and message.time_next_visible
    assert count(queue) == 0 and peek_poison(connection_string, queue.queue_name) == []


def test_a_failing_message_is_retried_after_visibility_timeout_then_moved_to_poison_unchanged(
    queue: QueueClient, connection_string: str
) -> None:
    content = '{"scale_set": "vmss-1", "attempt": 1, "note": "é ✓"}'
    queue.send_message(content)
    ends: list[float] = []
    starts: list[tuple[int, float]] = []

    def fails(message: func.QueueMessage) -> None:
        starts.append((int(message.dequeue_count or 0), time.time()))
        ends.append(time.time())
        raise RuntimeError("the function failed")

    settings = fast(max_dequeue_count=3, visibility_timeout_s=1.0)
    report = QueueListener(connection_string, queue.queue_name, fails, settings=settings).drain(timeout_s=60)
    assert not report.timed_out  # a failed message that is not released stays invisible 10 minutes
    assert [count for count, _ in starts] == [1, 2, 3]
    assert [i.outcome for i in report.invocations] == ["retried", "retried", "poisoned"]
    for (_, start), end in zip(starts[1:], ends, strict=False):
        assert start - end >= 0.95  # invisible for visibilityTimeout (Azurite's clock: ms)
    assert (report.delivered, report.failed, report.poisoned) == (0, 3, 1)
    [poison] = peek_poison(connection_string, queue.queue_name)
    assert poison.text == content
    assert poison.content == base64.b64encode(content.encode()).decode()  # the wire text, unchanged
    assert count(queue) == 0


def test_a_message_dequeued_past_the_maximum_goes_to_poison_without_running(
    queue: QueueClient, connection_string: str
) -> None:
    plain = raw(queue, connection_string)

    def dequeue(times: int) -> None:
        for _ in range(times):  # as hosts that died after receiving it would leave it
            message = plain.receive_message(visibility_timeout=30)
            assert message is not None
            plain.update_message(message.id, pop_receipt=message.pop_receipt, visibility_timeout=0)

    queue.send_message("dead hosts twice")
    dequeue(2)
    queue.send_message("dead host once")
    dequeue(1)
    ran: list[str] = []
    settings = fast(max_dequeue_count=2)
    listener = QueueListener(
        connection_string, queue.queue_name, lambda m: ran.append(m.get_body().decode()), settings=settings
    )
    report = listener.drain(idle_s=0.3, timeout_s=60)
    assert ran == ["dead host once"]  # dequeued a second time: at the maximum, it still runs
    assert sorted(i.outcome for i in report.invocations) == ["poisoned-unrun", "succeeded"]
    assert [p.text for p in peek_poison(connection_string, queue.queue_name)] == ["dead hosts twice"]
    assert count(queue) == 0


def test_a_message_that_is_not_base64_goes_to_poison_without_running(
    queue: QueueClient, connection_string: str
) -> None:
    raw(queue, connection_string).send_message("not base64 ~!")
    ran: list[func.QueueMessage] = []
    report = QueueListener(connection_string, queue.queue_name, ran.append, settings=fast()).drain(idle_s=0.3)
    assert ran == [] and [i.outcome for i in report.invocations] == ["undecodable"]
    assert [p.content for p in peek_poison(connection_string, queue.queue_name)] == ["not base64 ~!"]


def test_a_long_invocation_stays_invisible_past_the_running_visibility_and_runs_once(
    queue: QueueClient, connection_string: str
) -> None:
    queue.send_message("long")
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def long(message: func.QueueMessage) -> None:
        calls.append(message.id or "")
        started.set()
        release.wait(60)

    # Two hosts' listeners on one queue; the message is fetched invisible for 3 s, renewed every 1.5 s.
    def host() -> QueueListener:
        return QueueListener(
            connection_string, queue.queue_name, long, settings=fast(), running_visibility_s=3
        )

    listeners = [host(), host()]
    for listener in listeners:
        listener.start()
    try:
        assert started.wait(60)
        wait_for(lambda: sum(each.renewals for each in listeners) >= 3, "three renewals (4.5 s, past 3 s)")
        assert queue.peek_messages() == []  # still invisible to every other poll
        assert len(calls) == 1
    finally:
        release.set()
        assert all(listener.stop(timeout_s=60) for listener in listeners)
    invocations = [i for listener in listeners for i in listener.report().invocations]
    assert [i.outcome for i in invocations] == ["succeeded"] and invocations[0].renewals >= 3
    assert len(calls) == 1 and count(queue) == 0


def test_concurrency_never_exceeds_batch_size_plus_new_batch_threshold(
    queue: QueueClient, connection_string: str
) -> None:
    for n in range(12):
        queue.send_message(f"message {n}")
    lock, gates = threading.Lock(), dict[str, threading.Event]()
    running, peak, release_all = [0], [0], threading.Event()

    def blocks(message: func.QueueMessage) -> None:
        gate = threading.Event()
        with lock:
            gates[str(message.id)] = gate
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            if not release_all.is_set():
                gate.wait(60)
        finally:
            with lock:
                running[0] -= 1

    def release(n: int) -> None:
        with lock:
            for gate in [g for g in gates.values() if not g.is_set()][:n]:
                gate.set()

    settings = fast(batch_size=4, new_batch_threshold=2)
    listener = QueueListener(connection_string, queue.queue_name, blocks, settings=settings)
    listener.start()
    try:
        # One batch of 4 runs: more than the threshold, so the listener pauses fetching.
        wait_for(lambda: listener.waiting_for_capacity and running[0] == 4, "the first batch, paused")
        assert peak[0] == 4 and len(queue.peek_messages(32)) == 8
        release(2)  # down to the threshold (2): one more batch of 4, so 6 run at once
        wait_for(
            lambda: listener.capacity_waits == 2 and listener.waiting_for_capacity and running[0] == 6,
            "the second batch, paused",
        )
        assert peak[0] == 6 == settings.max_concurrency and len(queue.peek_messages(32)) == 4
    finally:
        release_all.set()
        release(12)
        wait_for(lambda: listener.report().delivered == 12, "all twelve delivered")
        assert listener.stop(timeout_s=60)
    report = listener.report()
    assert report.delivered == 12 and report.max_running == 6 and peak[0] == 6


# ----- host processes


def test_host_processes_answer_event_grid_as_the_webhook_does(tmp_path: Path, connection_string: str) -> None:
    environment = {
        "TestStorage": connection_string,
        "TEST_QUEUE": "unused",
        "TEST_MARKS": str(tmp_path / "marks"),
    }
    with HostPool(
        2, environment, app="test_queue_host:test_app", pythonpath=[TESTS], log_dir=tmp_path
    ) as pool:
        for i in range(2):
            assert pool.post(i, [{"id": f"ok-{i}", "data": {}}], "on_event")[0] == 202
            status, text = pool.post(i, [{"id": f"fails-{i}", "data": {"fail": True}}], "on_event")
            assert status == 500 and "the function failed" in text
            assert pool.post(i, [{"id": "x"}], "no_such_function")[0] == 404
            assert pool.post(i, [{"id": "x"}], "on_event", event_type="")[0] == 400
            validation = [{"id": "v", "data": {"validationCode": "code-1"}}]
            status, text = pool.post(i, validation, "on_event", event_type="SubscriptionValidation")
            assert (status, json.loads(text)) == (200, {"validationResponse": "code-1"})
        # As Event Grid's handler: a 2xx is delivered, a 500 is retried, then given up.
        player = EventGridPlayer(pool.handler("on_event"), schedule_s=(0.0,), max_attempts=2, jitter=0.0)
        assert [a.status for a in player.deliver({"id": "played", "data": {}}).attempts] == [200]
        assert [a.outcome for a in player.deliver({"id": "x", "data": {"fail": True}}).attempts] == [
            "Failed"
        ] * 2
        assert pool.stop() == [0, 0]  # SIGTERM: a clean stop
    ran = {(m["id"], m["pid"]) for m in marks(tmp_path / "marks") if m["function"] == "on_event"}
    assert {event for event, _ in ran} >= {"ok-0", "ok-1", "fails-0", "played"}
    assert len({pid for _, pid in ran}) == 2  # both hosts ran events


def test_a_killed_hosts_message_reappears_after_the_running_visibility_for_another_host(
    tmp_path: Path, queue: QueueClient, connection_string: str
) -> None:
    record = tmp_path / "marks"
    environment = {
        "TestStorage": connection_string,
        "TEST_QUEUE": queue.queue_name,
        "TEST_MARKS": str(record),
        f"{ENV_PREFIX}maxPollingInterval": "00:00:00.200",
    }
    with HostPool(
        2,
        environment,
        app="test_queue_host:test_app",
        running_visibility_s=3,
        pythonpath=[TESTS],
        log_dir=tmp_path,
    ) as pool:
        sent = time.time()
        queue.send_message("hangs first")
        wait_for(lambda: len(marks(record)) == 1, f"the first delivery (host logs: {tmp_path})")
        [first] = marks(record)
        killed = [p.pid for p in pool.processes].index(first["pid"])
        pool.kill(killed)
        wait_for(lambda: len(marks(record)) == 2, f"the delivery after the kill (logs: {tmp_path})", 90)
        second = marks(record)[1]
        assert (first["dequeue_count"], second["dequeue_count"]) == (1, 2)
        assert second["pid"] == pool.processes[1 - killed].pid
        assert second["time"] - sent >= 3 * 0.95  # not before the running visibility ran out
        wait_for(lambda: count(queue) == 0, "the second delivery's message deleted")
        codes = pool.stop()
    assert codes[killed] == -9 and codes[1 - killed] == 0
    assert peek_poison(connection_string, queue.queue_name) == []


def test_a_pool_runs_the_projects_app(local_azure: LocalAzure, tmp_path: Path) -> None:
    unique = uuid.uuid4().hex[:12]
    environment = local_azure.environment(
        audit_table=f"audit{unique}",
        recheck_queue=f"recheck-{unique}",
        archive_container=f"archive-{unique}",
        lock_container=f"locks-{unique}",
    )
    environment[f"{ENV_PREFIX}maxPollingInterval"] = "00:00:00.200"
    recheck = QueueClient.from_connection_string(
        local_azure.azurite.connection_string,
        environment["RECHECK_QUEUE"],
        message_encode_policy=TextBase64EncodePolicy(),
    )
    recheck.create_queue()
    with HostPool(2, environment, log_dir=tmp_path, seed=1) as pool:
        malformed = {"id": f"malformed-{unique}", "eventType": "Contoso.Unknown", "subject": "/x", "data": {}}
        assert pool.deliver(malformed) == 202  # rejected, recorded, answered: not redelivered
        recheck.send_message("not a re-check")
        wait_for(lambda: count(recheck) == 0, f"the malformed re-check consumed (host logs: {tmp_path})")
        assert pool.stop() == [0, 0]
    records = list(AuditLog(Settings.from_env(environment)).records())
    rejected = [r for r in records if r.kind == RecordKind.REJECTED]
    assert malformed["id"] in {r.event_id for r in rejected}
    assert any(r.event_id != malformed["id"] for r in rejected), rejected  # and the queue's message
    assert peek_poison(local_azure.azurite.connection_string, environment["RECHECK_QUEUE"]) == []
