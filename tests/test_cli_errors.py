"""Specification of the command's errors: one line on standard error naming the command and what
was wrong, no traceback (``--debug`` shows it), and the exit code the README documents: 2 for bad
input, 3 for Azure or its storage out of reach, 4 for a fault of the command itself."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from estate import Estate

from remediation import cli


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def unreachable(estate: Estate, monkeypatch: pytest.MonkeyPatch, service: str) -> None:
    """Point one storage service (Table, Blob, Queue) of the connection where nothing listens."""
    nothing_listens = "http://127.0.0.1:9/devstoreaccount1"
    connection = estate.environment["RemediationStorage"]
    parts = [p for p in connection.split(";") if p and not p.startswith(f"{service}Endpoint=")]
    monkeypatch.setenv("RemediationStorage", ";".join([*parts, f"{service}Endpoint={nothing_listens}"]) + ";")
    monkeypatch.setenv("STORAGE_RETRY_TOTAL", "0")


def test_whatif_on_a_file_that_is_not_utf8_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "export.json"
    path.write_bytes(b'[{"name": "caf\xe9"}]')  # Latin-1, as a Windows shell may save it

    assert cli.main(["whatif", "--inventory", str(path)]) == cli.EXIT_BAD_INPUT
    assert one_line(capsys).startswith("remediation whatif: a file is not UTF-8 text")


def test_audit_against_unreachable_storage_says_so_in_a_line(
    estate: Estate, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    unreachable(estate, monkeypatch, "Table")

    assert cli.main(["audit", "--since", "1h"]) == cli.EXIT_AZURE
    assert one_line(capsys).startswith("remediation audit: Azure or its storage could not be reached:")


def test_a_fault_of_the_command_is_one_line_unless_debugging(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise KeyError("scale_set")

    monkeypatch.setattr(cli, "_cmd_whatif", broken)
    path = tmp_path / "empty.json"
    path.write_text("[]")

    assert cli.main(["whatif", "--inventory", str(path)]) == cli.EXIT_INTERNAL
    line = one_line(capsys)
    assert line.startswith("remediation whatif: internal error (KeyError): 'scale_set'")
    assert "--debug" in line
    with pytest.raises(KeyError):
        cli.main(["--debug", "whatif", "--inventory", str(path)])


def test_a_file_that_cannot_be_written_is_bad_input(
    estate: Estate, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "no-such-directory" / "report.html"
    assert cli.main(["report", "--since", "1h", "-o", "html", "--file", str(target)]) == cli.EXIT_BAD_INPUT
    assert "no-such-directory" in one_line(capsys)


@pytest.mark.refusals
def test_a_sweep_arm_refuses_is_one_line_and_an_azure_error(
    estate: Estate, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The identity lost its role: Resource Graph and the listing fallback both answer 403."""
    import json

    import arm_docs as docs

    monkeypatch.setenv("REMEDIATION_POLICY", json.dumps({"monitored_subscriptions": [docs.SUB]}))
    estate.sim.revoke(estate.remediator_access)

    assert cli.main(["sweep"]) == cli.EXIT_AZURE
    line = one_line(capsys)
    assert line.startswith("remediation sweep: ARM refused it: ")
    assert "403" in line and "AuthorizationFailed" in line


def test_a_replay_against_unreachable_storage_is_one_line_and_an_azure_error(
    estate: Estate, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    unreachable(estate, monkeypatch, "Blob")

    assert cli.main(["replay", "--poison", "1d"]) == cli.EXIT_AZURE
    assert one_line(capsys).startswith("remediation replay: Azure or its storage could not be reached:")


def test_a_bad_audit_filter_is_bad_input_named_by_the_command(
    estate: Estate, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["audit", "--since", "yesterday"]) == cli.EXIT_BAD_INPUT
    assert one_line(capsys).startswith("remediation audit: ")
