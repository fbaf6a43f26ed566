"""ARM traffic recorded from real Azure (shared/fixtures/recorded-arm), read without a YAML library.

The cassettes are go-vcr YAML: each body is one quoted line, each header name a key of its own
line under `headers:`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sim_helpers import SHARED

RECORDED = SHARED / "fixtures" / "recorded-arm"
_HEADER = re.compile(r"^ {12}([A-Za-z0-9-]+):$", re.MULTILINE)


@dataclass(frozen=True)
class Interaction:
    method: str
    url: str
    path: str  # the URL without its query
    status: int
    body: Any  # the response body, parsed; None if empty
    headers: frozenset[str]  # the response's header names, lower-cased


def _body(response: str) -> str:
    """The response body's text: single-quoted (`''` is a quote) or double-quoted (JSON escapes)."""
    single = re.search(r"^\s+body: '(.*)'$", response, re.MULTILINE)
    if single is not None:
        return single.group(1).replace("''", "'")
    double = re.search(r'^\s+body: (".*")$', response, re.MULTILINE)
    return str(json.loads(double.group(1))) if double is not None else ""


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
            )
        )
    return found
