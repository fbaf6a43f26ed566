"""What a command prints, as ``az`` prints it: ``--output/-o json|jsonc|table|tsv|csv`` and
``--query`` (JMESPath, applied before the format). Pure: a value in, text out.

- ``json``: indented JSON; ``jsonc``: the same, coloured (ANSI), for a terminal;
- ``table``: a list of objects as columns of their scalar fields (nested values are left out, as
  ``az`` leaves them out; ``--query`` picks them), a list of scalars as one column ``Result``;
- ``tsv``: one line per item, its scalar values separated by tabs, no header (for ``cut`` and
  shell loops); nested values as compact JSON;
- ``csv``: a header of the fields, one row per item.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

FORMATS = ("json", "jsonc", "table", "tsv", "csv")

_TOKENS = re.compile(r'("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)')
_KEY, _STRING, _LITERAL, _NUMBER, _RESET = "\x1b[94m", "\x1b[32m", "\x1b[95m", "\x1b[36m", "\x1b[0m"


class QueryError(ValueError):
    """A --query that is not JMESPath; the message names the position."""


def apply_query(value: Any, query: str | None) -> Any:
    if not query:
        return value
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        return jmespath.search(query, value)
    except JMESPathError as error:
        raise QueryError(f"--query {query!r}: {str(error).splitlines()[0]}") from None


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)


def _items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str | bytes) else [value]


def _columns(items: list[Any], scalars_only: bool) -> list[str]:
    columns: dict[str, None] = {}
    for item in items:
        if isinstance(item, Mapping):
            for key, field in item.items():
                if not scalars_only or _scalar(field):
                    columns.setdefault(str(key), None)
    return list(columns)


def _table(value: Any) -> str:
    items = _items(value)
    columns = _columns(items, scalars_only=True)
    if not columns:
        rows = [[_cell(item)] for item in items]
        columns = ["Result"]
    else:
        rows = [[_cell(item.get(c)) if isinstance(item, Mapping) else "" for c in columns] for item in items]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows)
    return "\n".join(lines) + "\n"


def _tsv(value: Any) -> str:
    lines = []
    for item in _items(value):
        fields = list(item.values()) if isinstance(item, Mapping) else _items(item)
        lines.append("\t".join(_cell(field).replace("\t", " ").replace("\n", " ") for field in fields))
    return "\n".join(lines) + ("\n" if lines else "")


def _csv(value: Any) -> str:
    items = _items(value)
    columns = _columns(items, scalars_only=False) or ["Result"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for item in items:
        if isinstance(item, Mapping):
            writer.writerow([_cell(item.get(c)) for c in columns])
        else:
            writer.writerow([_cell(item)])
    return out.getvalue()


def _colour(match: re.Match[str]) -> str:
    string, colon, literal, number = match.groups()
    if string is not None:
        return f"{_KEY if colon else _STRING}{string}{_RESET}{colon or ''}"
    return f"{_LITERAL}{literal}{_RESET}" if literal else f"{_NUMBER}{number}{_RESET}"


def render(value: Any, output: str, query: str | None = None) -> str:
    """``value`` (JSON-able) as ``output`` after ``query``; raises QueryError for a bad query."""
    if output not in FORMATS:
        raise ValueError(f"--output {output!r} is not one of {', '.join(FORMATS)}")
    shown = apply_query(value, query)
    if output == "table":
        return _table(shown)
    if output == "tsv":
        return _tsv(shown)
    if output == "csv":
        return _csv(shown)
    text = json.dumps(shown, indent=2, default=str)
    return (_TOKENS.sub(_colour, text) if output == "jsonc" else text) + "\n"


def shown(value: Any, output: str, query: str | None, human: str | None = None) -> str:
    """What a command prints: its ``human`` form (its own table, summary or lines) when the output
    is the default table and nothing is queried, else ``value`` rendered."""
    if output == "table" and not query and human is not None:
        return human
    return render(value, output, query)
