"""Specification of the audit log's entity-group transactions on the wire (remediation/table_batch.py):
the body is the one azure-data-tables writes, byte for byte but for its boundaries and per-part
dates; Azurite stores what it says; a refused transaction fails as the SDK's would (the failing
operation's status and code, nothing of it stored); the service's documented answer is read.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.transport import HttpTransport
from azure.data.tables import TableClient

from localazure.stack import LocalAzure
from remediation import table_batch
from remediation.audit import AuditLog
from remediation.journal import AuditUnavailable
from remediation.settings import Settings

ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFTTgo6DZ6OY4YLGw=="
CONNECTION = (
    f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={ACCOUNT_KEY};"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)
WHEN = datetime(2026, 12, 4, 23, 16, 13, 761072, tzinfo=UTC)
OPERATIONS: list[tuple[str, dict[str, Any]]] = [
    ("create", {"PartitionKey": "p'1", "RowKey": "r-1", "kind": "intent", "n": 5, "t": WHEN, "b": True}),
    ("upsert", {"PartitionKey": "p'1", "RowKey": "r 2#", "kind": "outcome", "text": 'a "quoted" é'}),
]


class _Captured(Exception):
    pass


class _Capture(HttpTransport[Any, Any]):
    """A transport that keeps the SDK's prepared request instead of sending it."""

    def __init__(self) -> None:
        self.body = b""
        self.headers: dict[str, str] = {}

    def __enter__(self) -> _Capture:
        return self

    def __exit__(self, *args: object) -> None:
        return None

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def send(self, request: Any, **kwargs: Any) -> Any:
        request.prepare_multipart_body()
        self.body, self.headers = request.body, dict(request.headers)
        raise _Captured


def normalised(body: bytes) -> str:
    """Boundaries named alike; the per-part dates the SDK's header policy adds dropped."""
    text = body.decode()
    text = re.sub(r"batch_[0-9a-f-]{36}", "batch_B", text)
    text = re.sub(r"changeset_[0-9a-f-]{36}", "changeset_C", text)
    return re.sub(r"(?m)^(x-ms-date|Date): [^\r\n]*\r\n", "", text)


def test_the_body_is_the_one_azure_data_tables_writes() -> None:
    capture = _Capture()
    client = TableClient.from_connection_string(CONNECTION, table_name="audit", transport=capture)
    with pytest.raises(_Captured):
        client.submit_transaction(OPERATIONS)

    ours = table_batch.request("http://127.0.0.1:10002/devstoreaccount1/audit", OPERATIONS)

    assert normalised(ours.body) == normalised(capture.body)
    assert re.sub(r"batch_[0-9a-f-]{36}", "batch_B", ours.content_type) == re.sub(
        r"batch_[0-9a-f-]{36}", "batch_B", capture.headers["Content-Type"]
    )


def test_an_operation_it_does_not_write_is_refused_by_name() -> None:
    with pytest.raises(table_batch.UnsupportedOperation, match="'delete'"):
        table_batch.request("http://host/t", [("delete", {"PartitionKey": "p", "RowKey": "r"})])


# The answers as the service documents them ("Performing entity group transactions").
DOCUMENTED_SUCCESS = (
    b"--batchresponse_7ab1553a-7dd6-4180-a2e9-1d7b39f3b4f9\r\n"
    b"Content-Type: multipart/mixed; boundary=changesetresponse_3fed4a35-2a2b-4b6f-a9b8-2a8a7e7b5a60\r\n\r\n"
    b"--changesetresponse_3fed4a35-2a2b-4b6f-a9b8-2a8a7e7b5a60\r\n"
    b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    b"HTTP/1.1 201 Created\r\nContent-ID: 1\r\nX-Content-Type-Options: nosniff\r\n"
    b"Cache-Control: no-cache\r\nDataServiceVersion: 3.0;\r\n"
    b"Content-Type: application/json;odata=minimalmetadata;streaming=true;charset=utf-8\r\n\r\n"
    b'{"odata.metadata":"x","PartitionKey":"p","RowKey":"1"}\r\n'
    b"--changesetresponse_3fed4a35-2a2b-4b6f-a9b8-2a8a7e7b5a60\r\n"
    b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    b"HTTP/1.1 204 No Content\r\nContent-ID: 2\r\nX-Content-Type-Options: nosniff\r\n"
    b'Cache-Control: no-cache\r\nETag: W/"0x5B168C7B6E589D2"\r\nDataServiceVersion: 1.0;\r\n\r\n\r\n'
    b"--changesetresponse_3fed4a35-2a2b-4b6f-a9b8-2a8a7e7b5a60--\r\n"
    b"--batchresponse_7ab1553a-7dd6-4180-a2e9-1d7b39f3b4f9--\r\n"
)
DOCUMENTED_FAILURE = (
    b"--batchresponse_e69b1c6c-50a3-4c4d-9e8b-7ff9c3b0b86b\r\n"
    b"Content-Type: multipart/mixed; boundary=changesetresponse_1fa2b5a1-5d2b-4c1c-8c12-7a0a8e8b9f33\r\n\r\n"
    b"--changesetresponse_1fa2b5a1-5d2b-4c1c-8c12-7a0a8e8b9f33\r\n"
    b"Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    b"HTTP/1.1 409 Conflict\r\nContent-ID: 2\r\n"
    b"Content-Type: application/json;odata=minimalmetadata;streaming=true;charset=utf-8\r\n\r\n"
    b'{"odata.error":{"code":"EntityAlreadyExists","message":{"lang":"en-US",'
    b'"value":"1:The specified entity already exists.\\nRequestId:5f4f6e1a"}}}\r\n'
    b"--changesetresponse_1fa2b5a1-5d2b-4c1c-8c12-7a0a8e8b9f33--\r\n"
    b"--batchresponse_e69b1c6c-50a3-4c4d-9e8b-7ff9c3b0b86b--\r\n"
)


def test_the_documented_answers_are_read_part_by_part() -> None:
    success = table_batch.answers(
        "multipart/mixed; boundary=batchresponse_7ab1553a-7dd6-4180-a2e9-1d7b39f3b4f9", DOCUMENTED_SUCCESS
    )
    assert [(a.status, a.reason) for a in success] == [(201, "Created"), (204, "No Content")]

    (failure,) = table_batch.answers(
        "multipart/mixed; boundary=batchresponse_e69b1c6c-50a3-4c4d-9e8b-7ff9c3b0b86b", DOCUMENTED_FAILURE
    )
    assert failure.status == 409
    code, message = failure.error
    assert code == "EntityAlreadyExists" and message.startswith("1:The specified entity already exists.")


def test_an_answer_without_a_boundary_is_refused() -> None:
    with pytest.raises(ValueError, match="boundary"):
        table_batch.answers("application/json", b"{}")


@pytest.fixture
def audit(local_azure: LocalAzure) -> tuple[AuditLog, TableClient]:
    env = local_azure.environment(audit_table=f"batch{uuid.uuid4().hex[:10]}")
    settings = Settings.from_env(env)
    log = AuditLog(settings)
    table = TableClient.from_connection_string(settings.storage_connection_string, settings.audit_table)
    return log, table


def _entity(row: str, **fields: Any) -> dict[str, Any]:
    return {"PartitionKey": "w-20261204", "RowKey": row, **fields}


def test_azurite_stores_every_operation_of_a_transaction_with_its_types(
    audit: tuple[AuditLog, TableClient],
) -> None:
    log, table = audit
    log.store_entities([("create", _entity("a", n=5, t=WHEN, b=True)), ("create", _entity("b", kind="x"))])
    log.store_entities([("upsert", _entity("b", more="y")), ("create", _entity("c"))])

    stored = {e["RowKey"]: e for e in table.query_entities("PartitionKey eq 'w-20261204'")}
    assert sorted(stored) == ["a", "b", "c"]
    assert stored["a"]["n"] == 5 and stored["a"]["b"] is True
    assert stored["a"]["t"] == WHEN
    assert stored["b"]["kind"] == "x" and stored["b"]["more"] == "y", "upsert merges"


def test_a_refused_transaction_fails_with_its_operations_error_and_stores_nothing(
    audit: tuple[AuditLog, TableClient],
) -> None:
    log, table = audit
    log.store_entities([("create", _entity("there"))])

    with pytest.raises(AuditUnavailable) as raised:
        log.store_entities([("create", _entity("new")), ("create", _entity("there"))])

    cause = raised.value.__cause__
    assert isinstance(cause, HttpResponseError)
    assert cause.status_code == 409 and "EntityAlreadyExists" in str(cause)
    rows = sorted(e["RowKey"] for e in table.query_entities("PartitionKey eq 'w-20261204'"))
    assert rows == ["there"], "atomic: the new entity was not stored either"
