"""The HTTP endpoints' behaviour, apart from the Functions bindings: plain parameters in, a status
and a JSON body out, so function_app.py stays a thin shell and this is testable as it is.

- ``GET /api/audit`` (function key): the audit log, with the same filters as `remediation audit`,
  a page at a time (``page_size``, ``continuation``);
- ``POST /api/replay`` (admin key): replay archived, dead-lettered, given or poison events
  through the work queue, bounded per request; answers 202 with the replay's id, whose records
  (progress, then each event's handling) ``GET /api/audit?event_id=<id>`` shows;
- ``GET /api/doctor`` (admin key): `remediation doctor`'s checks, run inside the app as its own
  identity (``subscription``: ids separated by commas, default the monitored ones).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from remediation.audit import AuditLog
from remediation.engine import Remediator, ReplayItem, remediator_for
from remediation.journal import AuditUnavailable
from remediation.review import parse_duration, parse_filters
from remediation.settings import Settings

MAX_PAGE_SIZE = 1000
MAX_REPLAY_EVENTS = 1000
MAX_BODY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]

    def json(self) -> str:
        return json.dumps(self.body, default=str)


def _error(status: int, message: str) -> Answer:
    return Answer(status, {"error": message})


def _page_size(params: Mapping[str, str]) -> int:
    raw = params.get("page_size") or "100"
    # ASCII digits only: str.isdigit() also accepts "¹", which int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size: {raw!r} is not a whole number 1..{MAX_PAGE_SIZE}")
    return int(raw)


def audit_page(params: Mapping[str, str], settings: Settings) -> Answer:
    try:
        filters = parse_filters(params, datetime.now(UTC))
        page_size = _page_size(params)
    except ValueError as error:
        return _error(400, str(error))
    try:
        page = AuditLog(settings).query(filters, page_size, params.get("continuation") or "")
    except ValueError as error:
        return _error(400, f"continuation: {error}")
    except AuditUnavailable as error:
        return _error(503, str(error))
    return Answer(200, {"records": [r.as_json() for r in page.records], "continuation": page.continuation})


def _replay_items(body: Mapping[str, Any], remediator: Remediator) -> list[ReplayItem]:
    sources = [key for key in ("event_id", "since", "events", "dead_letter", "poison") if key in body]
    if len(sources) != 1:
        raise ValueError("give exactly one of event_id, since, events, dead_letter, poison")
    source = sources[0]
    value = body[source]
    if source == "event_id":
        if not isinstance(value, str) or not value:
            raise ValueError("event_id: expected a non-empty string")
        return [remediator.archived_event(value)]
    if source in ("since", "poison"):
        if not isinstance(value, str):
            raise ValueError(f"{source}: expected a duration such as 2h")
        try:
            window = parse_duration(value)
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from None
        items = remediator.archived_since(window) if source == "since" else remediator.poison_since(window)
    elif source == "events":
        if not isinstance(value, list):
            raise ValueError("events: expected a list of events")
        items = iter(ReplayItem(f"request events[{i}]", event) for i, event in enumerate(value))
    else:
        if not isinstance(value, str) or not value:
            raise ValueError("dead_letter: expected a container name")
        items = remediator.dead_lettered(value)
    taken: list[ReplayItem] = []
    for item in items:
        if len(taken) == MAX_REPLAY_EVENTS:
            raise ValueError(f"more than {MAX_REPLAY_EVENTS} events: narrow the request (or use the CLI)")
        taken.append(item)
    return taken


def replay(body: bytes, settings: Settings) -> Answer:
    if len(body) > MAX_BODY_BYTES:
        return _error(413, f"request body over {MAX_BODY_BYTES} bytes")
    try:
        request = json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return _error(400, f"body: not JSON: {error}")
    if not isinstance(request, dict):
        return _error(400, "body: expected a JSON object")
    dry_run = request.get("dry_run", False)
    if not isinstance(dry_run, bool):
        return _error(400, "dry_run: expected true or false")
    remediator = remediator_for(dataclasses.replace(settings, dry_run=settings.dry_run or dry_run))
    try:
        queued = remediator.replay(_replay_items(request, remediator))
    except (ValueError, LookupError) as error:
        return _error(
            400 if isinstance(error, ValueError) else 404, str(error.args[0] if error.args else error)
        )
    except AuditUnavailable as error:
        return _error(503, str(error))
    return Answer(
        202,
        {
            "replay_id": queued.replay_id,
            "queued": queued.queued,
            "dry_run": remediator.settings.dry_run,
            "progress": f"/api/audit?event_id={queued.replay_id}",
        },
    )


def doctor(params: Mapping[str, str]) -> Answer:
    """Every check, as `remediation doctor -o json` prints them; 200 whatever they found (the
    body says: ``failed`` counts the failed lines)."""
    from remediation.doctor import Status
    from remediation.doctor_probe import as_rows, diagnose
    from remediation.resource_ids import InvalidResourceId, subscription_id

    try:
        subscriptions = [
            subscription_id(s.strip()) for s in (params.get("subscription") or "").split(",") if s.strip()
        ]
    except InvalidResourceId as error:
        return _error(400, f"subscription: {error}")
    checks = diagnose(subscriptions=subscriptions)
    failed = sum(check.status is Status.FAIL for check in checks)
    return Answer(200, {"checks": as_rows(checks), "failed": failed})
