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

The content is the entity's properties but its keys, as JSON with sorted keys and no whitespace;
values the table hands back typed (an Int64 as a value with its EDM type) count as their value.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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


def judge(
    table: Iterable[Mapping[str, Any]], ledger: Iterable[str], since: datetime, until: datetime
) -> Verdict:
    """Compare the hourly copies the table holds for the records timed in [since, until] with the
    ledger's lines for them. ``ledger``: the stored lines' texts (of the hours the window touches),
    in order; lines and entities outside the window are left out.

    Entities of other partitions in ``table`` are ignored: the hourly copy is the canonical one.
    """
    low, high = row_bounds(since, until)
    read = _read(ledger, low, high)
    discrepancies = read.discrepancies
    agree = 0
    seen: set[str] = set()
    for entity in table:
        partition, row = str(entity["PartitionKey"]), str(entity["RowKey"])
        if not partition.startswith(HOURLY) or not low <= row < high:
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
            agree += 1
    for key in read.lines.keys() - seen - read.ambiguous:
        discrepancies.append(Discrepancy(Finding.DELETED, key, "in the ledger, not in the table"))
    order = {finding: place for place, finding in enumerate(Finding)}
    discrepancies.sort(key=lambda discrepancy: (order[discrepancy.finding], discrepancy.key))
    judged = seen | read.lines.keys() | read.ambiguous
    return Verdict(len(judged), agree, tuple(discrepancies), read.duplicates)
