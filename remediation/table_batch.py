"""Azure Table's entity-group transaction (``$batch``) on the wire: its request body built and its
answer read. Pure: bytes in, bytes out; ``audit`` sends it through its table client's pipeline.

Why not ``TableClient.submit_transaction``: azure-data-tables builds the body with the ``email``
package's MIME generator and reads the answer with its parser, running each part's pipeline
policies in thread pools it starts per transaction. That was most of the audit log's CPU: 62% of a
no-op event's, 63% of the CPU of a host reconciling a storm (py-spy, issue 13). The service's
format is small ("Performing entity group transactions", learn.microsoft.com/rest/api/
storageservices/performing-entity-group-transactions): a multipart/mixed batch holding one
changeset, one HTTP request per operation. It is written here as azure-data-tables 12.7 writes
it (same request lines, headers and entity JSON, which its own ``_add_entity_properties`` types),
so the service cannot tell the two apart; ``tests/test_table_batch.py`` holds them side by side.

Operations are azure-data-tables' tuples: ``("create", entity)`` (an insert: POST to the table),
``("upsert", entity)`` (insert or merge: PATCH of the entity without If-Match).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

from remediation.group_commit import Operation

API_VERSION = "2019-02-02"  # what azure-data-tables 12.7 sends (x-ms-version)
_STATUS_LINE = re.compile(rb"^HTTP/1\.1 (\d{3}) ?([^\r\n]*)\r?$", re.MULTILINE)
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?')


class UnsupportedOperation(ValueError):
    """An operation this encoder does not write (only create and upsert are used)."""


@dataclass(frozen=True)
class Request:
    """The ``$batch`` POST: its body and the Content-Type naming the batch's boundary."""

    body: bytes
    content_type: str


@dataclass(frozen=True)
class PartAnswer:
    """One operation's answer inside the batch's answer."""

    status: int
    reason: str
    body: bytes  # its JSON (an error's ``odata.error``), or empty

    @property
    def error(self) -> tuple[str, str]:
        """The error's code and message, as the service puts them in ``odata.error`` (or "")."""
        try:
            error = json.loads(self.body or b"{}").get("odata.error", {})
        except ValueError:
            return "", self.body.decode("utf-8", "replace")[:500]
        message = error.get("message", {})
        return str(error.get("code", "")), str(
            message.get("value", "") if isinstance(message, dict) else message
        )


def _key(value: str) -> str:
    return quote(value.replace("'", "''"), safe="")


def request(table_url: str, operations: Sequence[Operation]) -> Request:
    """The ``$batch`` body for ``operations`` on the table at ``table_url`` (no trailing slash)."""
    from azure.data.tables._serialize import _add_entity_properties  # the SDK's typing of values

    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    parts = [f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n".encode()]
    for index, (kind, entity) in enumerate(operations):
        if kind == "create":
            line, accept = f"POST {table_url} HTTP/1.1", "application/json;odata=minimalmetadata"
        elif kind == "upsert":
            where = f"(PartitionKey='{_key(entity['PartitionKey'])}',RowKey='{_key(entity['RowKey'])}')"
            line, accept = f"PATCH {table_url}{where} HTTP/1.1", "application/json"
        else:
            raise UnsupportedOperation(f"transaction operation {kind!r} is not written by this encoder")
        payload = json.dumps(_add_entity_properties(entity)).encode()
        head = (
            f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: {index}\r\n\r\n{line}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nx-ms-version: {API_VERSION}\r\nDataServiceVersion: 3.0\r\n"
            f"Accept: {accept}\r\n\r\n"
        )
        parts += [head.encode(), payload, b"\r\n"]
    parts.append(f"--{changeset}--\r\n\r\n--{batch}--\r\n".encode())
    return Request(b"".join(parts), f"multipart/mixed; boundary={batch}")


def answers(content_type: str, body: bytes) -> list[PartAnswer]:
    """Each operation's answer in a ``$batch`` answer (202): every part's HTTP status, reason and
    body. A transaction that failed answers one part: the failing operation's error."""
    outer = _BOUNDARY.search(content_type)
    if outer is None:
        raise ValueError(f"a $batch answer without a multipart boundary: {content_type!r}")
    found: list[PartAnswer] = []
    for section in body.split(b"--" + outer.group(1).encode()):
        inner = re.search(rb'boundary="?([^";\r\n]+)"?', section)
        pieces = section.split(b"--" + inner.group(1)) if inner else [section]
        for piece in pieces:
            status = _STATUS_LINE.search(piece)
            if status is None:
                continue
            _, _, rest = piece[status.end() :].partition(b"\r\n\r\n")
            found.append(PartAnswer(int(status.group(1)), status.group(2).decode("latin-1"), rest.strip()))
    return found
