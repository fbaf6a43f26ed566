"""Tamper evidence, the judgement: does the audit table agree with its immutable copy? Pure.

Every record the audit log stores is also appended, as one line, to the ledger (``ledger``: append
blobs in a container under a time-based immutability policy). A line is taken from the record's
canonical copy, the one in its hourly partition (``h-YYYYMMDDHH``; every record has exactly one):
its key (PartitionKey and RowKey), a SHA-256 of its canonical JSON, and the content itself, so that
a reviewer can see what was changed, not only that something was.

The table is written first, the ledger after it, within the same store: a store returns (and its
ARM write may go out) only once both hold the record. So:
- a ledger line whose record is not in the table: the record was deleted from the table;
- a record whose content differs from its line: it was edited in the table;
- a record with no line: it was inserted into the table by someone else, or the process stopped
  between the two writes (a crash, storage lost in between); the two cannot be told apart here;
- a batch stored again after a failure appends its lines again: identical lines for one key are
  one record, differing lines for one key are reported (the ledger itself is ambiguous there).

The other copies of a record (by set, event, correlation; failed; writes) hold the same content
under other keys: each is compared with its record's line too, and named by its own key when it
differs or is missing, so that a record edited only where a reviewer would look it up by set is
found as well.

The content is the entity's properties but its keys, as JSON with sorted keys and no whitespace;
values the table hands back typed (an Int64 as a value with its EDM type) count as their value.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from remediation.records import INDEX_BUCKETS, AuditRecord, hour_key

HOURLY = "h-"  # the partitions whose copies are the ledger's lines (records.AuditRecord.keys)
_KEYS = ("PartitionKey", "RowKey")


def _plain(value: Any) -> Any:
    if hasattr(value, "edm_type") and hasattr(value, "value"):  # azure-data-tables EntityProperty
        value = value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def canonical(entity: Mapping[str, Any]) -> str:
    """The entity's properties, its keys left out, as canonical JSON."""
    content = {name: _plain(value) for name, value in entity.items() if name not in _KEYS}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def digest(entity: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(entity).encode()).hexdigest()


@dataclass(frozen=True)
class LedgerLine:
    """One record in the ledger: where its canonical copy is, its digest, and its content."""

    partition: str
    row: str
    sha256: str
    record: Mapping[str, Any]

    @property
    def key(self) -> str:
        return f"{self.partition}/{self.row}"

    @classmethod
    def of(cls, entity: Mapping[str, Any]) -> LedgerLine:
        content = {name: _plain(value) for name, value in entity.items() if name not in _KEYS}
        return cls(str(entity["PartitionKey"]), str(entity["RowKey"]), digest(entity), content)

    def to_text(self) -> str:
        """The line as stored: JSON on one line (no newline in it), without the trailing newline."""
        return json.dumps(
            {"pk": self.partition, "rk": self.row, "sha256": self.sha256, "record": self.record},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,  # a U+2028 in a field cannot break the line
            default=str,
        )

    @classmethod
    def from_text(cls, text: str) -> LedgerLine:
        """Parse a stored line; ValueError if it is not one."""
        try:
            data = json.loads(text)
            line = cls(str(data["pk"]), str(data["rk"]), str(data["sha256"]), dict(data["record"]))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"not a ledger line: {text[:80]!r}") from error
        return line


def ledger_lines(partition: str, entities: Iterable[Mapping[str, Any]]) -> list[LedgerLine]:
    """The ledger lines of the entities stored in ``partition``: one per entity of an hourly
    partition, none for any other (their records' hourly copies carry them)."""
    if not partition.startswith(HOURLY):
        return []
    return [LedgerLine.of(entity) for entity in entities]


def row_bounds(since: datetime, until: datetime) -> tuple[str, str]:
    """The RowKey range [low, high) of the records timed in [since, until] (``AuditRecord.row_key``)."""
    low = since.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return low, until.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ") + "~"


class Finding(enum.Enum):
    EDITED = "edited"  # its content in the table differs from its ledger line
    DELETED = "deleted from table"  # a ledger line names it; the table does not hold it
    UNLEDGERED = "missing from ledger"  # in the table, no ledger line names it
    AMBIGUOUS = "differing ledger lines"  # two lines for one key disagree
    UNREADABLE = "unreadable ledger line"  # not a line, or its digest does not match its content


@dataclass(frozen=True)
class Discrepancy:
    finding: Finding
    key: str  # PartitionKey/RowKey of the record's hourly copy ("" for an unreadable line)
    detail: str = ""


@dataclass(frozen=True)
class Verdict:
    checked: int  # records judged: in the table, in the ledger, or both
    agree: int
    discrepancies: tuple[Discrepancy, ...]
    duplicates: int = 0  # identical repeated lines (a batch stored again), not discrepancies

    def count(self, finding: Finding) -> int:
        return sum(1 for discrepancy in self.discrepancies if discrepancy.finding is finding)

    @property
    def ok(self) -> bool:
        return not self.discrepancies


def _changed_fields(stored: Mapping[str, Any], ledgered: Mapping[str, Any]) -> str:
    names = sorted(
        name
        for name in set(stored) | set(ledgered)
        if name not in _KEYS and _plain(stored.get(name)) != ledgered.get(name)
    )
    return "fields changed: " + ", ".join(names) if names else "content differs"


@dataclass
class _Ledgered:
    """The ledger's lines of a window, one per key, and what reading them found."""

    lines: dict[str, LedgerLine]
    ambiguous: set[str]
    discrepancies: list[Discrepancy]
    duplicates: int = 0


def _read(texts: Iterable[str], low: str, high: str) -> _Ledgered:
    read = _Ledgered({}, set(), [])
    for text in texts:
        if not text.strip():
            continue
        try:
            line = LedgerLine.from_text(text)
        except ValueError as error:
            read.discrepancies.append(Discrepancy(Finding.UNREADABLE, "", str(error)))
            continue
        if digest(line.record) != line.sha256:
            mismatch = "its digest does not match its content"
            read.discrepancies.append(Discrepancy(Finding.UNREADABLE, line.key, mismatch))
            continue
        if not low <= line.row < high:  # the hour's blobs hold the rest of the hour too
            continue
        known = read.lines.setdefault(line.key, line)
        if known is line:
            continue
        if known.sha256 == line.sha256:
            read.duplicates += 1
        elif line.key not in read.ambiguous:
            read.ambiguous.add(line.key)
            differ = "two lines with different content"
            read.discrepancies.append(Discrepancy(Finding.AMBIGUOUS, line.key, differ))
    return read


def hourly_key(row: str) -> str:
    """The key of the hourly copy a record's copy belongs to, from the copy's RowKey (its
    ``<time>-<id>`` ends it); "" for a row that is not a record's (an event's handled marker)."""
    suffix = row.rsplit("|", 1)[-1]
    if len(suffix) < 24 or suffix[8] != "T" or not (suffix[:8] + suffix[9:15]).isdigit():
        return ""
    return f"{HOURLY}{suffix[:8]}{suffix[9:11]}/{suffix}"


def table_queries(since: datetime, until: datetime) -> list[tuple[str, dict[str, str]]]:
    """The OData filters (with parameters) that read every copy of the records timed in
    [since, until]: the hourly, failed and write partitions by key range; the index buckets (by
    set, event, correlation), whose RowKeys lead with the key, by the records' ``time`` (a scan of
    each bucket), a second wider than the window (``judge`` keeps the window exactly)."""
    low, high = row_bounds(since, until)
    ranged = "PartitionKey ge @first and PartitionKey le @last and RowKey ge @low and RowKey lt @high"
    queries = [
        (
            ranged,
            {"first": f"{prefix}-{hour_key(since)[:size]}", "last": f"{prefix}-{hour_key(until)[:size]}"},
        )
        for prefix, size in (("h", 10), ("f", 10), ("w", 8))
    ]
    for _, parameters in queries:
        parameters.update(low=low, high=high)
    start = (since - timedelta(seconds=1)).astimezone(UTC).isoformat()
    end = (until + timedelta(seconds=1)).astimezone(UTC).isoformat()
    for index in ("s", "e", "c"):
        for bucket in range(INDEX_BUCKETS):
            timed = "PartitionKey eq @partition and time ge @start and time le @end"
            queries.append((timed, {"partition": f"{index}-{bucket}", "start": start, "end": end}))
    return queries


def _expected_copies(line: LedgerLine) -> set[str]:
    """The keys of the copies, other than the hourly one, that the line's record is stored under."""
    try:
        record = AuditRecord.from_entity(line.record)
    except (ValueError, TypeError, KeyError):
        return set()
    stored_under = record.keys()  # a method of the record (its partitions), not a mapping's
    return {
        f"{key.partition}/{key.prefix}{line.row}" for key in stored_under if key.partition != line.partition
    }


def judge(
    table: Iterable[Mapping[str, Any]],
    ledger: Iterable[str],
    since: datetime,
    until: datetime,
    *,
    every_copy: bool = False,
) -> Verdict:
    """Compare what the table holds for the records timed in [since, until] with the ledger's
    lines for them. ``ledger``: the stored lines' texts (of the hours the window touches), in
    order; lines and entities outside the window are left out.

    Each copy in ``table`` is compared with its record's line, the hourly one as the record (edited,
    deleted, missing from the ledger), any other as itself, named by its own key. ``every_copy``:
    ``table`` holds every copy of the window (``table_queries``), so a copy that a line's record
    should have and the table lacks is reported deleted.
    """
    low, high = row_bounds(since, until)
    read = _read(ledger, low, high)
    discrepancies = read.discrepancies
    matched: set[str] = set()
    seen: set[str] = set()
    copies: dict[str, dict[str, Mapping[str, Any]]] = {}  # hourly key -> copy key -> copy
    for entity in table:
        partition, row = str(entity["PartitionKey"]), str(entity["RowKey"])
        if not partition.startswith(HOURLY):
            key = hourly_key(row)
            if key and low <= key.split("/", 1)[1] < high:
                copies.setdefault(key, {})[f"{partition}/{row}"] = entity
            continue
        if not low <= row < high:
            continue
        key = f"{partition}/{row}"
        seen.add(key)
        if key in read.ambiguous:
            continue
        line = read.lines.get(key)
        if line is None:
            discrepancies.append(Discrepancy(Finding.UNLEDGERED, key, "in the table, not in the ledger"))
        elif digest(entity) != line.sha256:
            discrepancies.append(Discrepancy(Finding.EDITED, key, _changed_fields(entity, line.record)))
        else:
            matched.add(key)
    for key in read.lines.keys() - seen - read.ambiguous:
        discrepancies.append(Discrepancy(Finding.DELETED, key, "in the ledger, not in the table"))
    tampered = _judge_copies(read, copies, seen, every_copy, discrepancies)
    order = {finding: place for place, finding in enumerate(Finding)}
    discrepancies.sort(key=lambda discrepancy: (order[discrepancy.finding], discrepancy.key))
    judged = seen | read.lines.keys() | read.ambiguous
    return Verdict(len(judged), len(matched - tampered), tuple(discrepancies), read.duplicates)


def _judge_copies(
    read: _Ledgered,
    copies: Mapping[str, Mapping[str, Mapping[str, Any]]],
    seen: set[str],
    every_copy: bool,
    discrepancies: list[Discrepancy],
) -> set[str]:
    """Judge the records' other copies; returns the hourly keys of the records one was found wrong in."""
    tampered: set[str] = set()
    for key, held in copies.items():
        line = read.lines.get(key)
        if key in read.ambiguous or (line is None and key in seen):
            continue  # reported by its hourly copy
        for copy_key, entity in held.items():
            if line is None:
                detail = f"a copy of {key}, which the ledger does not hold"
                discrepancies.append(Discrepancy(Finding.UNLEDGERED, copy_key, detail))
            elif digest(entity) != line.sha256:
                detail = f"copy of {key}: {_changed_fields(entity, line.record)}"
                discrepancies.append(Discrepancy(Finding.EDITED, copy_key, detail))
                tampered.add(key)
    if every_copy:
        for key, line in read.lines.items():
            if key in read.ambiguous or key not in seen:
                continue  # a record deleted from the table is one finding, whatever its copies
            for copy_key in sorted(_expected_copies(line) - set(copies.get(key, {}))):
                discrepancies.append(
                    Discrepancy(Finding.DELETED, copy_key, f"copy of {key}: not in the table")
                )
                tampered.add(key)
    return tampered
