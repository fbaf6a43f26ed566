"""ARM traffic recorded from real Azure (shared/fixtures/recorded-arm), read without a YAML library.

The cassettes are go-vcr YAML: each body is one quoted line, each header name a key of its own
line under `headers:` and each of its values a `- value` line below it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from sim_helpers import SHARED

RECORDED = SHARED / "fixtures" / "recorded-arm"
_HEADER = re.compile(r"^ {12}([A-Za-z0-9-]+):$", re.MULTILINE)
_VALUE = re.compile(r"^ {16}- (.*)$")


@dataclass(frozen=True)
class Interaction:
    method: str
    url: str
    path: str  # the URL without its query
    status: int
    body: Any  # the response body, parsed; None if empty
    headers: frozenset[str]  # the response's header names, lower-cased
    index: int = -1  # the interaction's id in its cassette
    # The response's headers (lower-cased names, first value), the request's body as sent and headers.
    header_values: dict[str, str] = field(default_factory=dict, compare=False)
    request_body: str = ""
    request_headers: dict[str, str] = field(default_factory=dict, compare=False)


def _unquote(text: str) -> str:
    """A YAML scalar: double-quoted (JSON escapes), single-quoted (`''` is a quote) or plain."""
    text = text.strip()
    if text.startswith('"') and text.endswith('"'):
        return str(json.loads(text))
    if text.startswith("'") and text.endswith("'"):
        return text[1:-1].replace("''", "'")
    return text


def _body(section: str) -> str:
    """A request's or response's body text: single-quoted (`''` is a quote) or double-quoted."""
    single = re.search(r"^\s+body: '(.*)'$", section, re.MULTILINE)
    if single is not None:
        return single.group(1).replace("''", "'")
    double = re.search(r'^\s+body: (".*")$', section, re.MULTILINE)
    return str(json.loads(double.group(1))) if double is not None else ""


def _header_values(section: str) -> dict[str, str]:
    """The first value of each header under `headers:` (names lower-cased)."""
    values: dict[str, str] = {}
    current = ""
    for line in section.partition("headers:")[2].splitlines()[1:]:
        name = _HEADER.match(line)
        value = _VALUE.match(line)
        if name is not None:
            current = name.group(1).lower()
        elif value is not None and current:
            values.setdefault(current, _unquote(value.group(1)))
        elif line.strip() and not line.startswith(" " * 12):
            break
    return values


def interactions(cassette: str) -> list[Interaction]:
    found: list[Interaction] = []
    text = (RECORDED / cassette).read_text(encoding="utf-8")
    for chunk in text.split("\n    - id: ")[1:]:
        request, _, response = chunk.partition("\n      response:\n")
        url = re.search(r"^\s+url: (\S+)$", request, re.MULTILINE)
        method = re.search(r"^\s+method: (\S+)$", request, re.MULTILINE)
        code = re.search(r"^\s+code: (\d+)$", response, re.MULTILINE)
        body = _body(response)
        if url is None or method is None or code is None:
            continue
        headers = frozenset(h.lower() for h in _HEADER.findall(response.partition("headers:")[2]))
        found.append(
            Interaction(
                method=method.group(1),
                url=url.group(1),
                path=url.group(1).split("?")[0],
                status=int(code.group(1)),
                body=json.loads(body) if body else None,
                headers=headers,
                index=int(chunk.split("\n", 1)[0]),
                header_values=_header_values(response),
                request_body=_body(request),
                request_headers=_header_values(request),
            )
        )
    return found
