"""Specification of `remediation report`: given an estate whose restricted set had public IPs,
one stripped and one exempt, and a set only audited, the report names every public IP that
appeared on an instance, how long it was exposed, what was done and by which event, and what was
left alone and why; its HTML form is one self-contained file with an inline SVG timeline.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from estate import Estate

from remediation.cli import main


class Parsed(HTMLParser):
    """The elements of an HTML document, with their attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def of(self, tag: str) -> list[dict[str, str]]:
        return [attrs for name, attrs in self.elements if name == tag]


@pytest.fixture
def estate_with_history(estate: Estate) -> dict[str, Any]:
    estate.create_set("web", tags={"remediation.mode": "strip"})
    estate.create_set("watched", tags={"remediation.mode": "audit"})
    estate.scale("web", 2)
    estate.scale("watched", 1)
    exempt, stripped = sorted(vm["id"] for vm in estate.vms("web"))
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    estate.tag(exempt, {"remediation.exempt-until": tomorrow, "remediation.exempt-reason": "INC-7 forensics"})
    events = estate.events()
    for event in events:
        estate.deliver(event)
    (watched,) = estate.vms("watched")
    return {"exempt": exempt, "stripped": stripped, "watched": watched["id"], "events": events}


def report(capsys: pytest.CaptureFixture[str], *options: str) -> str:
    assert main(["report", "--since", "1d", *options]) == 0
    return capsys.readouterr().out


def test_the_report_names_each_exposure_its_length_and_what_ended_it(
    estate_with_history: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    history = estate_with_history
    document = json.loads(report(capsys, "-o", "json"))

    exposures = {e["instance"]: e for s in document["sets"] for e in s["exposures"]}
    assert set(exposures) == {history["exempt"], history["stripped"], history["watched"]}
    stripped = exposures[history["stripped"]]
    assert stripped["status"] == "ended" and stripped["action"] == "detach-public-ip"
    assert stripped["event_id"] in {e["id"] for e in history["events"]}
    assert stripped["began_from"] == "created" and stripped["exposed_seconds"] > 0
    assert stripped["public_ip"].startswith("/subscriptions/")
    exempt = exposures[history["exempt"]]
    assert exempt["status"] == "open" and "INC-7 forensics" in exempt["left_alone"]
    watched = exposures[history["watched"]]
    assert watched["status"] == "open" and watched["mode"] == "audit"


def test_the_csv_report_has_a_row_per_exposure(
    estate_with_history: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    rows = list(csv.DictReader(io.StringIO(report(capsys, "-o", "csv"))))
    assert sorted(r["status"] for r in rows) == ["ended", "open", "open"]
    assert all(r["public_ip"] and r["began"] for r in rows)


def test_the_html_report_is_one_self_contained_file_with_an_svg_timeline(
    estate_with_history: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "report.html"
    assert main(["report", "--since", "1d", "-o", "html", "--file", str(path)]) == 0
    assert "3 exposures on 2 sets" in capsys.readouterr().out
    parsed = Parsed()
    parsed.feed(path.read_text(encoding="utf-8"))

    tags = {name for name, _ in parsed.elements}
    assert "script" not in tags and "link" not in tags and "img" not in tags and "iframe" not in tags
    for _, attrs in parsed.elements:
        for name in ("src", "href"):
            assert name not in attrs, f"an external reference: {attrs}"
        assert not any(key.startswith("on") for key in attrs), "no event handler attributes"
    assert len(parsed.of("svg")) == 2, "a timeline per set"
    bars = parsed.of("rect")
    assert len(bars) == 3, "a bar per exposure"
    groups = parsed.of("g")
    assert sorted(g["data-status"] for g in groups) == ["ended", "open", "open"]


def test_the_timeline_draws_each_exposure_from_its_start_to_its_end_or_the_reports() -> None:
    """On a window of one hour, an exposure from minute 10
    to 20 is a bar over those minutes; one still open from minute 30 runs to the right edge."""
    from remediation.report import Exposure, SetReport
    from remediation.report_html import LABEL, WIDTH, timeline

    since = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    until = since + timedelta(hours=1)
    minute = (WIDTH - LABEL) / 60
    ended = Exposure("/s/web", "/s/web/vm1", "/s/ip1", began=since + timedelta(minutes=10))
    ended.ended = since + timedelta(minutes=20)
    still_open = Exposure("/s/web", "/s/web/vm2", "/s/ip2", began=since + timedelta(minutes=30))
    parsed = Parsed()
    parsed.feed(timeline(SetReport("/s/web", "strip", (ended, still_open), ()), since, until))

    first, second = parsed.of("rect")
    assert float(first["x"]) == pytest.approx(LABEL + 10 * minute, abs=0.1)
    assert float(first["width"]) == pytest.approx(10 * minute, abs=0.1)
    assert float(second["x"]) == pytest.approx(LABEL + 30 * minute, abs=0.1)
    assert float(second["x"]) + float(second["width"]) == pytest.approx(WIDTH, abs=0.1)


def test_a_failed_write_leaves_the_exposure_open_and_is_named_with_it() -> None:
    from remediation.model import RecordKind
    from remediation.records import AuditRecord
    from remediation.report import build

    at = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    finding = AuditRecord(
        RecordKind.DECISION, scale_set="/s/web", instance="/s/web/vm1", public_ip="/s/ip1", origin="scale-set"
    )
    decision = dataclasses.replace(finding, time=at, mode="strip", action="detach-public-ip")
    intent = dataclasses.replace(finding, kind=RecordKind.INTENT, time=at, action="detach-public-ip")
    failed = AuditRecord(
        RecordKind.OUTCOME,
        time=at + timedelta(seconds=2),
        intent_id=intent.record_id,
        result="failed",
        error="LinkedAuthorizationFailed",
        scale_set="/s/web",
    )

    (set_report,) = build([failed, intent, decision])  # in any order: sorted by time

    (exposure,) = set_report.exposures
    assert exposure.status == "open" and exposure.began == at and exposure.began_from == "seen"
    assert exposure.failures == [
        f"detach-public-ip failed at {failed.time.isoformat()}: LinkedAuthorizationFailed"
    ]
    assert set_report.failures == (f"{failed.time.isoformat()} outcome LinkedAuthorizationFailed",)
    assert exposure.exposed_for(at + timedelta(minutes=5)) == timedelta(minutes=5)
