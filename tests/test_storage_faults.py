"""The storage fault injector (localazure.storage_faults): a proxy in front of a real Azurite that the
real azure SDKs talk to, failing exactly the requests it is told to. Nothing here waits for time to
pass: every failure is placed by counting requests, and the SDK clients run with ``retry_total=0``
(or a zero backoff) so each call is exactly one request."""

from __future__ import annotations

import http.client
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ServiceResponseError,
)
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError
from azure.storage.blob import (
    AccountSasPermissions,
    BlobServiceClient,
    ContainerClient,
    ResourceTypes,
    generate_account_sas,
)
from azure.storage.blob import LinearRetry as BlobLinearRetry
from azure.storage.queue import LinearRetry as QueueLinearRetry
from azure.storage.queue import QueueClient, QueueServiceClient

from localazure.azurite import ACCOUNT_KEY, ACCOUNT_NAME, Azurite
from localazure.stack import LocalAzure
from localazure.storage_faults import (
    StorageFaults,
    StorageRequest,
    table_batch_containing,
    table_write_containing,
)
from remediation.audit import AuditLog
from remediation.journal import AuditUnavailable
from remediation.model import RecordKind
from remediation.records import AuditRecord
from remediation.review import Filters

INTENT = '"kind": "intent"'


@pytest.fixture
def faults(local_azure: LocalAzure) -> Iterator[StorageFaults]:
    with StorageFaults(local_azure.azurite) as proxy:
        yield proxy


def _name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def _table(connection_string: str, **options: Any) -> TableClient:
    options.setdefault("retry_total", 0)
    client = TableClient.from_connection_string(connection_string, _name("faults"), **options)
    client.create_table()
    return client


def _container(connection_string: str, **options: Any) -> ContainerClient:
    options.setdefault("retry_total", 0)
    service = BlobServiceClient.from_connection_string(connection_string, **options)
    return service.create_container(_name("faults-"))


def _queue(connection_string: str, **options: Any) -> QueueClient:
    options.setdefault("retry_total", 0)
    service = QueueServiceClient.from_connection_string(connection_string, **options)
    return service.create_queue(_name("faults-"))


def _entity(row: str, kind: str = "decision") -> dict[str, Any]:
    return {"PartitionKey": "p", "RowKey": row, "kind": kind}


def _server_busy(call: Callable[[], object]) -> HttpResponseError:
    """The call fails with the injected ServerBusy, as the SDK reports it."""
    with pytest.raises(HttpResponseError) as caught:
        call()
    error = caught.value
    assert error.status_code == 503
    assert _response(error).headers["x-ms-error-code"] == "ServerBusy"
    return error


def _response(error: HttpResponseError) -> Any:
    assert error.response is not None
    return error.response


def _code(error: HttpResponseError) -> Any:
    """The error code the SDK decoded (its exceptions add ``error_code``)."""
    return getattr(error, "error_code", None)


def _injected(requests: list[StorageRequest]) -> list[bool]:
    return [request.injected for request in requests]


# --- traffic through the proxy authenticates and works ---


def test_table_traffic_authenticates_through_the_proxy(
    faults: StorageFaults, local_azure: LocalAzure
) -> None:
    table = _table(faults.connection_string)
    table.create_entity(_entity("r1"))
    table.upsert_entity({**_entity("r2"), "n": 2})
    table.submit_transaction([("create", _entity("r3", "intent")), ("upsert", _entity("r4", "outcome"))])
    assert table.get_entity("p", "r2")["n"] == 2
    assert [e["RowKey"] for e in table.query_entities("kind eq @k", parameters={"k": "intent"})] == ["r3"]
    assert len(list(table.list_entities(results_per_page=2))) == 4
    table.delete_entity("p", "r1")
    service = TableServiceClient.from_connection_string(faults.connection_string, retry_total=0)
    assert table.table_name in [t.name for t in service.list_tables()]

    direct = TableClient.from_connection_string(local_azure.azurite.connection_string, table.table_name)
    assert sorted(e["RowKey"] for e in direct.list_entities()) == ["r2", "r3", "r4"]
    seen = faults.requests()
    assert {request.service for request in seen} == {"table"}
    assert all(200 <= request.status < 300 and not request.injected for request in seen)
    assert any(request.path.endswith("/$batch") for request in seen)
    table.delete_table()


def test_blob_traffic_authenticates_through_the_proxy(faults: StorageFaults, local_azure: LocalAzure) -> None:
    container = _container(faults.connection_string, max_single_put_size=1024, max_block_size=1024)
    container.upload_blob("2026/01/small.json", b'{"a": 1}')
    large = bytes(range(256)) * 20  # 5 KiB: staged as blocks, then committed
    container.upload_blob("2026/01/large.bin", large)
    assert container.download_blob("2026/01/small.json").readall() == b'{"a": 1}'
    assert container.download_blob("2026/01/large.bin").readall() == large
    assert container.get_blob_client("2026/01/large.bin").get_blob_properties().size == len(large)  # HEAD
    assert [b.name for b in container.list_blobs(name_starts_with="2026/")] == [
        "2026/01/large.bin",
        "2026/01/small.json",
    ]
    container.delete_blob("2026/01/small.json")

    direct = BlobServiceClient.from_connection_string(local_azure.azurite.connection_string)
    assert [b.name for b in direct.get_container_client(container.container_name).list_blobs()] == [
        "2026/01/large.bin"
    ]
    assert {request.service for request in faults.requests()} == {"blob"}
    assert not any(request.injected for request in faults.requests())
    container.delete_container()


def test_queue_traffic_authenticates_through_the_proxy(faults: StorageFaults) -> None:
    queue = _queue(faults.connection_string)
    queue.send_message("first")
    queue.send_message("second", visibility_timeout=3600)
    messages = list(queue.receive_messages(messages_per_page=32))
    assert [m.content for m in messages] == ["first"]
    queue.delete_message(messages[0])
    assert queue.get_queue_properties().approximate_message_count == 1
    assert list(queue.peek_messages()) == []
    assert {request.service for request in faults.requests()} == {"queue"}
    assert not any(request.injected for request in faults.requests())
    queue.delete_queue()


def test_a_wrong_key_is_refused_through_the_proxy(faults: StorageFaults) -> None:
    """Azurite really checks the signatures the proxy passes on (a success is not a formality)."""
    wrong = faults.connection_string.replace(ACCOUNT_KEY, "d3Jvbmcga2V5" * 8)
    calls: list[Callable[[], object]] = [
        lambda: TableClient.from_connection_string(wrong, _name("faults"), retry_total=0).create_table(),
        lambda: BlobServiceClient.from_connection_string(wrong, retry_total=0).create_container(_name("f-")),
        lambda: QueueServiceClient.from_connection_string(wrong, retry_total=0).create_queue(_name("f-")),
    ]
    for call in calls:
        with pytest.raises(HttpResponseError) as caught:
            call()
        assert caught.value.status_code == 403
        assert _code(caught.value) in ("AuthorizationFailure", "AuthenticationFailed")
    assert [request.status for request in faults.requests()] == [403, 403, 403]


# --- fail_next ---


def test_fail_next_fails_exactly_n_requests_then_traffic_works(faults: StorageFaults) -> None:
    table = _table(faults.connection_string)
    table.create_entity(_entity("r1"))
    outcomes = []
    faults.fail_next(5)
    for _ in range(8):
        try:
            table.get_entity("p", "r1")
            outcomes.append("ok")
        except HttpResponseError as error:
            assert error.status_code == 503
            assert _code(error) == "ServerBusy"  # decoded from Table's JSON error
            outcomes.append("busy")
    assert outcomes == ["busy"] * 5 + ["ok"] * 3
    assert faults.failures == 5
    assert faults.pending_failures == 0
    assert _injected(faults.requests()) == [False, False] + [True] * 5 + [False] * 3
    assert [request.status for request in faults.requests()[2:7]] == [503] * 5


def test_injected_failures_have_each_services_error_shape_and_are_counted_by_service(
    faults: StorageFaults,
) -> None:
    table = _table(faults.connection_string)
    container = _container(faults.connection_string)
    queue = _queue(faults.connection_string)
    container.upload_blob("b", b"x")
    faults.reset()

    faults.fail_next(4)
    table_error = _server_busy(lambda: table.submit_transaction([("create", _entity("r1"))]))
    assert _response(table_error).json()["odata.error"]["code"] == "ServerBusy"
    assert _code(_server_busy(lambda: container.download_blob("b").readall())) == "ServerBusy"
    assert _code(_server_busy(lambda: container.get_blob_client("b").get_blob_properties())) == "ServerBusy"
    queue_error = _server_busy(lambda: queue.send_message("m"))
    assert _code(queue_error) == "ServerBusy"
    assert "<Code>ServerBusy</Code>" in _response(queue_error).text()

    assert faults.failures == 4
    assert faults.failures_by_service() == {"blob": 2, "queue": 1, "table": 1}
    table.submit_transaction([("create", _entity("r1"))])
    assert container.download_blob("b").readall() == b"x"
    queue.send_message("m")
    assert faults.failures_by_service() == {"blob": 2, "queue": 1, "table": 1}


def test_the_sdks_retry_an_injected_failure_as_transient(faults: StorageFaults) -> None:
    """503 ServerBusy is retried, even for a POST (a batch, a queue message), as in Azure."""
    table = _table(faults.connection_string, retry_total=3, retry_backoff_factor=0)
    blob_retry = BlobLinearRetry(backoff=0, retry_total=3, random_jitter_range=0)
    queue_retry = QueueLinearRetry(backoff=0, retry_total=3, random_jitter_range=0)
    container = _container(faults.connection_string, retry_policy=blob_retry)
    queue = _queue(faults.connection_string, retry_policy=queue_retry)
    faults.reset()
    faults.fail_next(2)
    table.submit_transaction([("create", _entity("r1", "intent"))])
    faults.fail_next(3)
    container.upload_blob("b", b"x")
    faults.fail_next(1)
    queue.send_message("m")
    statuses = [(request.service, request.status) for request in faults.requests()]
    assert statuses[:3] == [("table", 503), ("table", 503), ("table", 202)]
    assert statuses[3:7] == [("blob", 503), ("blob", 503), ("blob", 503), ("blob", 201)]
    assert statuses[7:] == [("queue", 503), ("queue", 201)]
    assert faults.failures == 6


def test_concurrent_requests_meet_exactly_the_failures_armed(faults: StorageFaults) -> None:
    table = _table(faults.connection_string)
    table.create_entity(_entity("r1"))
    faults.reset()
    busy = [0] * 8

    def reader(index: int) -> None:
        client = TableClient.from_connection_string(faults.connection_string, table.table_name, retry_total=0)
        for _ in range(10):
            try:
                client.get_entity("p", "r1")
            except HttpResponseError:
                busy[index] += 1

    faults.fail_next(13)
    threads = [threading.Thread(target=reader, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(busy) == 13
    assert faults.failures == 13
    assert len(faults.requests()) == 80
    assert sorted(request.seq for request in faults.requests()) == list(range(3, 83))


# --- fail_after ---


def test_fail_after_a_matching_batch_fails_the_requests_after_it_not_the_batch(faults: StorageFaults) -> None:
    table = _table(faults.connection_string)
    container = _container(faults.connection_string)
    faults.reset()
    faults.fail_after(table_batch_containing(INTENT), 2)

    table.submit_transaction([("create", _entity("d1", "decision"))])  # a batch, no intent in it
    table.create_entity(_entity("i0", "intent"))  # an intent, but not in a batch
    table.submit_transaction([("create", _entity("d2", "decision")), ("create", _entity("i1", "intent"))])
    assert faults.failures == 0
    assert faults.pending_failures == 2  # armed by the batch that stored i1
    _server_busy(lambda: container.upload_blob("after", b"x"))
    _server_busy(lambda: table.submit_transaction([("create", _entity("o1", "outcome"))]))
    container.upload_blob("later", b"x")
    table.submit_transaction([("create", _entity("i2", "intent"))])  # one-shot: no second firing

    assert _injected(faults.requests()) == [False, False, False, True, True, False, False]
    assert [r.status for r in faults.requests()] == [202, 201, 202, 503, 503, 201, 202]
    assert faults.failures_by_service() == {"blob": 1, "queue": 0, "table": 1}
    assert table.get_entity("p", "i1")["kind"] == "intent"  # the matching batch itself was stored


def test_a_lost_answer_is_stored_yet_the_client_sees_a_dropped_connection(faults: StorageFaults) -> None:
    table = _table(faults.connection_string)
    faults.reset()
    faults.lose_answer(table_batch_containing(INTENT), occurrence=2)

    table.submit_transaction([("create", _entity("i1", "intent"))])  # the first: answered
    with pytest.raises(ServiceResponseError):
        table.submit_transaction([("create", _entity("i2", "intent"))])
    table.submit_transaction([("create", _entity("i3", "intent"))])  # one-shot

    assert table.get_entity("p", "i2")["kind"] == "intent", "Azurite stored what the client never heard of"
    assert faults.answers_lost == 1 and faults.failures == 0


def test_fail_after_waits_for_the_given_occurrence(faults: StorageFaults) -> None:
    table = _table(faults.connection_string)
    faults.reset()
    faults.fail_after(table_batch_containing(INTENT), 1, occurrence=3)
    for index in range(3):
        table.submit_transaction([("create", _entity(f"i{index}", "intent"))])
    _server_busy(lambda: table.get_entity("p", "i0"))
    assert table.get_entity("p", "i0")["kind"] == "intent"
    assert _injected(faults.requests()) == [False, False, False, True, False]


def test_a_batch_azurite_refuses_does_not_count_as_a_match(faults: StorageFaults) -> None:
    """Table answers a failed entity-group transaction 202 with the error inside: not a success."""
    table = _table(faults.connection_string)
    table.create_entity(_entity("i1", "intent"))
    faults.reset()
    faults.fail_after(table_batch_containing(INTENT), 1)
    with pytest.raises(TableTransactionError):
        table.submit_transaction([("create", _entity("i1", "intent"))])  # already exists
    assert faults.requests()[-1].status == 202
    assert faults.pending_failures == 0
    table.get_entity("p", "i1")
    table.submit_transaction([("create", _entity("i2", "intent"))])
    _server_busy(lambda: table.get_entity("p", "i1"))


def test_fail_after_takes_any_predicate_and_survives_one_that_raises(faults: StorageFaults) -> None:
    container = _container(faults.connection_string)
    faults.reset()

    def broken(request: StorageRequest) -> bool:
        raise RuntimeError("a broken harness")

    faults.fail_after(broken, 5)
    faults.fail_after(lambda r: r.service == "blob" and r.method == "PUT" and r.body == b"second", 1)
    container.upload_blob("one", b"first")
    container.upload_blob("two", b"second")
    _server_busy(lambda: container.download_blob("one").readall())
    assert container.download_blob("two").readall() == b"second"
    assert faults.failures == 1


def test_a_table_write_match_sees_single_entity_writes_and_batches(faults: StorageFaults) -> None:
    table = _table(faults.connection_string)
    faults.reset()
    faults.fail_after(table_write_containing(INTENT), 1, occurrence=3)

    table.create_entity(_entity("d1", "decision"))  # no intent in it
    table.create_entity(_entity("i1", "intent"))  # 1: a single-entity insert
    table.upsert_entity(_entity("i2", "intent"))  # 2: an upsert (PATCH)
    assert faults.pending_failures == 0
    table.submit_transaction([("create", _entity("i3", "intent"))])  # 3: a transaction
    assert faults.pending_failures == 1
    _server_busy(lambda: table.get_entity("p", "i1"))
    assert table.get_entity("p", "i3")["kind"] == "intent"


def _ledger_append_of(record: AuditRecord) -> Callable[[StorageRequest], bool]:
    """The Append Block that carries ``record``'s ledger line."""
    wanted = record.record_id.encode()
    return lambda request: (
        request.service == "blob" and "comp=appendblock" in request.path and wanted in request.body
    )


def test_the_products_intent_writes_match_and_what_follows_is_not_stored(
    faults: StorageFaults, local_azure: LocalAzure
) -> None:
    """The audit log's own write-ahead writes (remediation.audit) through the proxy's string: an
    intent stored alone is one single-entity insert per partition (group_commit's wave of one),
    then one append of its line to the ledger (remediation.ledger), which its store waits for."""
    settings = local_azure.settings(
        audit_table=_name("audit"), storage_connection_string=faults.connection_string, storage_retry_total=0
    )
    log = AuditLog(settings)
    scale_set = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/v"
    log.append(AuditRecord(RecordKind.DECISION, scale_set=scale_set, mode="strip"))
    intent = AuditRecord(RecordKind.INTENT, scale_set=scale_set, action="detach")
    faults.fail_after(_ledger_append_of(intent), 3)
    log.append(intent)
    assert faults.pending_failures == 3  # the intent is stored: its ARM write would go out now
    last = faults.requests()[-1]
    assert last.service == "blob" and "comp=appendblock" in last.path, "its line, after its table writes"
    with pytest.raises(AuditUnavailable):
        log.append(AuditRecord(RecordKind.OUTCOME, scale_set=scale_set, intent_id=intent.record_id))
    assert faults.failures == 1  # AuditUnavailable at once: the SDK was told not to retry
    faults.reset()
    window = Filters(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(minutes=5))
    kinds = [record.kind for record in log.search(replace(window, scale_set=scale_set))]
    assert kinds == [RecordKind.DECISION, RecordKind.INTENT]


# --- bookkeeping ---


def test_refuse_fails_every_matching_request_until_reset_and_nothing_else(faults: StorageFaults) -> None:
    down, up = _container(faults.connection_string), _container(faults.connection_string)
    faults.refuse(lambda request: f"/{down.container_name}/" in request.path)

    for _ in range(3):
        _server_busy(lambda: down.upload_blob("a.json", b"{}", overwrite=True))
    up.upload_blob("a.json", b"{}")

    assert faults.failures_by_service() == {"blob": 3, "queue": 0, "table": 0}
    faults.reset()
    down.upload_blob("a.json", b"{}", overwrite=True)
    assert down.download_blob("a.json").readall() == b"{}"


def test_reset_forgets_pending_failures_triggers_and_counts(faults: StorageFaults) -> None:
    table = _table(faults.connection_string)
    faults.fail_next(1)
    _server_busy(lambda: table.create_entity(_entity("r1")))
    faults.fail_next(3)
    faults.fail_after(table_batch_containing(INTENT), 2)
    faults.reset()
    assert (faults.failures, faults.pending_failures, faults.requests()) == (0, 0, [])
    assert faults.failures_by_service() == {"blob": 0, "queue": 0, "table": 0}
    table.submit_transaction([("create", _entity("i1", "intent"))])
    table.get_entity("p", "i1")
    assert faults.failures == 0


def test_the_request_log_is_bounded(local_azure: LocalAzure) -> None:
    with StorageFaults(local_azure.azurite, history=5) as proxy:
        table = _table(proxy.connection_string)
        table.create_entity(_entity("r1"))
        for _ in range(6):
            table.get_entity("p", "r1")
        assert [request.seq for request in proxy.requests()] == [4, 5, 6, 7, 8]
        assert all(request.body == b"" for request in proxy.requests())


# --- the wire: chunked bodies, keep-alive, HEAD ---


def test_a_chunked_body_is_forwarded_and_connections_are_kept_alive(faults: StorageFaults) -> None:
    container = _container(faults.connection_string)
    sas = generate_account_sas(
        ACCOUNT_NAME,
        ACCOUNT_KEY,
        ResourceTypes(object=True),
        AccountSasPermissions(read=True, write=True),
        datetime.now(UTC) + timedelta(hours=1),
    )
    assert faults.ports is not None
    path = f"/{ACCOUNT_NAME}/{container.container_name}/chunked.txt?{sas}"
    connection = http.client.HTTPConnection("127.0.0.1", faults.ports.blob, timeout=30)
    try:
        headers = {"x-ms-blob-type": "BlockBlob", "x-ms-version": "2021-08-06"}
        connection.request(
            "PUT", path, body=iter([b"hello, ", b"chunked"]), headers=headers, encode_chunked=True
        )
        response = connection.getresponse()
        assert (response.status, response.read()) == (201, b"")
        assert connection.sock is not None
        local_port = connection.sock.getsockname()[1]
        connection.request("HEAD", path, headers={"x-ms-version": "2021-08-06"})
        response = connection.getresponse()
        assert (response.status, response.getheader("Content-Length"), response.read()) == (200, "14", b"")
        faults.fail_next(1)
        connection.request("GET", path, headers={"x-ms-version": "2021-08-06"})
        response = connection.getresponse()
        assert (response.status, response.getheader("x-ms-error-code")) == (503, "ServerBusy")
        assert b"<Code>ServerBusy</Code>" in response.read()
        connection.request("GET", path, headers={"x-ms-version": "2021-08-06"})
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"hello, chunked")
        assert connection.sock is not None
        assert connection.sock.getsockname()[1] == local_port  # one connection for all four
    finally:
        connection.close()


# --- Azurite down; stopping ---


def test_when_azurite_is_down_the_client_meets_a_dropped_connection() -> None:
    with Azurite() as azurite, StorageFaults(azurite) as proxy:
        table = _table(proxy.connection_string)
        table.create_entity(_entity("r1"))
        azurite.stop()
        with pytest.raises(ServiceResponseError):  # sent, and the connection closed: no HTTP answer
            table.get_entity("p", "r1")
        with pytest.raises(AzureError) as caught:  # also what a batch (a POST) meets
            table.submit_transaction([("create", _entity("r3"))])
        assert not isinstance(caught.value, HttpResponseError)
        assert (proxy.requests()[-1].status, proxy.requests()[-1].injected) == (0, False)
        assert proxy.failures == 0  # not an injected failure

        azurite.restart()  # same ports, empty (in memory): the same proxy and client work again
        table.create_table()
        table.create_entity(_entity("r2"))
        assert table.get_entity("p", "r2")["kind"] == "decision"


def _own_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread not in before and thread.is_alive()]


def test_stop_closes_every_socket_and_leaves_no_thread(local_azure: LocalAzure) -> None:
    before = set(threading.enumerate())
    proxy = StorageFaults(local_azure.azurite).start()
    table = _table(proxy.connection_string)  # keeps its connection alive in its pool
    table.create_entity(_entity("r1"))
    assert proxy.ports is not None
    idle = http.client.HTTPConnection("127.0.0.1", proxy.ports.queue, timeout=30)
    idle.request("GET", f"/{ACCOUNT_NAME}?comp=list")  # unsigned: Azurite answers 403, connection stays
    idle_response = idle.getresponse()
    assert (idle_response.status, len(idle_response.read()) > 0) == (403, True)
    string, ports = proxy.connection_string, proxy.ports

    proxy.stop()
    assert _own_threads(before) == []
    for port in (ports.blob, ports.queue, ports.table):
        with pytest.raises(ConnectionRefusedError):
            http.client.HTTPConnection("127.0.0.1", port, timeout=30).connect()
    assert idle.sock is not None
    assert idle.sock.recv(1) == b""  # the kept-alive connection was closed by the proxy
    idle.close()
    proxy.stop()  # twice is harmless

    proxy.start()  # the same ports again, so the connection string the product holds still works
    try:
        assert (proxy.connection_string, proxy.ports) == (string, ports)
        assert table.get_entity("p", "r1")["RowKey"] == "r1"
    finally:
        proxy.stop()
    assert _own_threads(before) == []
