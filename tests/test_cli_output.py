"""Specification of every command's output options, as ``az`` has them: ``-o tsv`` for shell
loops, ``-o json --query`` (JMESPath) to pick from the result, the command's own table by default.
Given a restricted set that was remediated, each command prints what it did in each form."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import arm_docs as docs
import pytest
from estate import Estate

from remediation.cli import main

STRIP = {"remediation.mode": "strip"}


@pytest.fixture
def remediated(estate: Estate) -> Estate:
    estate.create_set("web", tags=STRIP)
    estate.scale("web", 1)
    for event in estate.events():
        estate.deliver(event)
    return estate


def run(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> str:
    assert main(list(argv)) == code
    captured = capsys.readouterr()
    return captured.out


def test_audit_in_tsv_and_queried_json(remediated: Estate, capsys: pytest.CaptureFixture[str]) -> None:
    actions = json.loads(run(capsys, "audit", "-o", "json", "--query", "[?kind=='intent'].action"))
    assert actions == ["detach-public-ip", "delete-public-ip"]
    lines = run(capsys, "audit", "-o", "tsv", "--query", "[?kind=='outcome'].[action, result]").splitlines()
    assert lines == ["detach-public-ip\tsucceeded", "delete-public-ip\tsucceeded"]
    assert run(capsys, "audit").rstrip().endswith("records"), "the table by default"


def test_sweep_in_tsv_and_queried_json(
    remediated: Estate, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATION_POLICY", json.dumps({"monitored_subscriptions": [docs.SUB]}))
    remediated.sim.advance_clock(remediated.sim.settings.graph_lag_s)  # Resource Graph shows the set
    restricted = json.loads(run(capsys, "sweep", "--dry-run", "-o", "json", "--query", "restricted"))
    assert restricted == [docs.set_id("web")]
    row = "{queued: queued, dry_run: dry_run}"  # an object is one row; a list, a row per item
    (line,) = run(capsys, "sweep", "--dry-run", "-o", "tsv", "--query", row).splitlines()
    assert line.split("\t") == ["1", "true"]


def test_replay_in_tsv_and_queried_json(remediated: Estate, capsys: pytest.CaptureFixture[str]) -> None:
    queued = json.loads(
        run(capsys, "replay", "--since", "1h", "--dry-run", "-o", "json", "--query", "queued")
    )
    assert queued >= 1
    (line,) = run(
        capsys, "replay", "--since", "1h", "--dry-run", "-o", "tsv", "--query", "[dry_run]"
    ).splitlines()
    assert line == "true"


def test_report_in_tsv_and_queried_json(remediated: Estate, capsys: pytest.CaptureFixture[str]) -> None:
    query = "sets[].exposures[].action"
    assert json.loads(run(capsys, "report", "--since", "1h", "-o", "json", "--query", query)) == [
        "detach-public-ip"
    ]
    (row,) = run(capsys, "report", "--since", "1h", "-o", "tsv").splitlines()
    assert row.split("\t")[0].lower() == docs.set_id("web").lower() and "ended" in row.split("\t")


def test_whatif_in_tsv_and_queried_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "estate.json"
    path.write_text(
        json.dumps(
            [
                docs.scale_set("web", 1, STRIP),
                docs.flex_instance("web", "0a1b2c3d", "w1Nic-0a1b2c3d"),
                docs.nic("w1Nic-0a1b2c3d", "web_0a1b2c3d", "pip1"),
            ]
        )
    )
    picked = json.loads(run(capsys, "whatif", "--inventory", str(path), "-o", "json", "--query", "[].action"))
    assert picked == ["detach-public-ip+delete-public-ip"]
    (line,) = run(
        capsys, "whatif", "--inventory", str(path), "-o", "tsv", "--query", "[].[origin, mode]"
    ).splitlines()
    assert line == "scale-set\tstrip"


def test_a_query_that_is_not_jmespath_is_one_line_and_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.json"
    path.write_text("[]")
    assert main(["whatif", "--inventory", str(path), "-o", "json", "--query", "[?origin=="]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("remediation whatif: --query '[?origin==': ")


def test_audit_verify_in_tsv_and_queried_json(remediated: Estate, capsys: pytest.CaptureFixture[str]) -> None:
    counts = json.loads(run(capsys, "audit", "verify", "-o", "json", "--query", "counts"))
    assert counts["edited"] == counts["deleted from table"] == counts["missing from ledger"] == 0
    (line,) = run(
        capsys, "audit", "verify", "-o", "tsv", "--query", "{checked: checked, agree: agree}"
    ).splitlines()
    checked, agree = line.split("\t")
    assert int(checked) == int(agree) > 0


class Terminal(io.StringIO):
    """A standard error that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def inventory_of(tmp_path: Path, sets: int) -> Path:
    path = tmp_path / "estate.json"
    path.write_text(json.dumps([docs.scale_set(f"web{i}", 0, STRIP) for i in range(sets)]))
    return path


def test_whatif_over_a_large_inventory_shows_progress_on_a_terminal_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = inventory_of(tmp_path, 25)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["whatif", "--inventory", str(path), "-o", "json"]) == 0
    drawn = terminal.getvalue()
    assert drawn.startswith("\rplanning [") and drawn.endswith("] 25/25\n")
    assert drawn.count("\r") == 25
    assert json.loads(capsys.readouterr().out) == [], "the result stays on stdout, apart"
    monkeypatch.undo()
    assert main(["whatif", "--inventory", str(path), "-o", "json"]) == 0
    assert capsys.readouterr().err == "", "no progress where stderr is a pipe or a file"


def test_a_sweep_shows_its_hand_over_on_a_terminal(
    remediated: Estate, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(24):
        remediated.create_set(f"more{i}", tags=STRIP)
    monkeypatch.setenv("REMEDIATION_POLICY", json.dumps({"monitored_subscriptions": [docs.SUB]}))
    remediated.sim.advance_clock(remediated.sim.settings.graph_lag_s)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["sweep", "--dry-run", "-o", "json", "--query", "queued"]) == 0
    assert terminal.getvalue().endswith("] 25/25\n") and "queueing looks [" in terminal.getvalue()
    assert json.loads(capsys.readouterr().out) == 25
