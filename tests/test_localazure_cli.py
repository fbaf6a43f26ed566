"""The `localazure` command: the stand-in's verbs, moved out of the product's `remediation`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

import localazure.demo
import sim.cli
from localazure.cli import main
from remediation.audit import AuditLog
from remediation.model import RecordKind
from remediation.records import AuditRecord
from remediation.settings import Settings


@pytest.fixture
def demo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo's storage in a folder of the test's; the settings `demo_storage` sets, restored."""
    storage = tmp_path / "azurite"
    monkeypatch.setattr(localazure.demo, "DEMO_STORAGE", storage)
    for key in ("RemediationStorage", "AUDIT_TABLE"):
        monkeypatch.setenv(key, "")
    return storage


def test_audit_reviews_the_log_the_last_demo_kept(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    demo_dir.mkdir()
    with localazure.demo.demo_storage():
        AuditLog(Settings.from_env()).append(AuditRecord(RecordKind.RECEIVED, event_id="evt-demo-1"))

    assert main(["audit", "--event-id", "evt-demo-1", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["kind"], r["event_id"]) for r in records] == [("received", "evt-demo-1")]
    assert main(["audit", "verify", "--since", "1d"]) == 0
    assert "0 intents without outcome" in capsys.readouterr().out


def test_audit_without_a_demo_says_to_run_it(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--summary"]) == 2
    assert "run `make demo` first" in capsys.readouterr().err


def test_audit_help_is_remediation_audits_and_needs_no_storage(
    demo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["audit", "--help"])
    assert exit.value.code == 0
    assert "usage: remediation audit" in capsys.readouterr().out


def test_serve_hands_its_options_to_the_simulator_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[list[str]] = []

    def serve(argv: Sequence[str]) -> int:
        received.append(list(argv))
        return 0

    monkeypatch.setattr(sim.cli, "serve", serve)
    assert main(["serve", "--port", "0", "--seed", "a.json", "--no-throttling"]) == 0
    assert received == [["--port", "0", "--seed", "a.json", "--no-throttling"]]


def test_demo_takes_no_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["demo", "--fast"])
    assert exit.value.code == 2
    assert "unrecognized arguments: --fast" in capsys.readouterr().err
