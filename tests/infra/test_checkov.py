"""checkov over infra/, offline: no failed check, and every skip carries its reason inline.

``infra/check.sh`` installs the pinned checkov into its own virtual environment on first use
(about a minute, from PyPI) and runs it with ``--skip-download``: nothing but the package index
is reached, and no Bridgecrew/Prisma account is involved.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
SKIP = re.compile(r"checkov:skip=([A-Z0-9_]+)(.*)")


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(INFRA / "check.sh"), "--output", "json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    try:
        parsed = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"checkov printed no JSON (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        )
    # One framework gives one report; several would give a list.
    assert isinstance(parsed, dict), f"unexpected checkov output: {str(parsed)[:500]}"
    assert parsed["check_type"] == "bicep"
    return parsed


def test_checkov_finds_no_failed_check(report: dict[str, Any]) -> None:
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']}): {check['check_name']}"
        for check in report["results"].get("failed_checks", [])
    ]
    assert report["summary"]["failed"] == 0, "checkov failed checks:\n" + "\n".join(failed)


def test_checkov_parses_every_file(report: dict[str, Any]) -> None:
    # A file checkov cannot parse would be silently unchecked.
    assert report["summary"]["parsing_errors"] == 0, report["results"].get("parsing_errors")
    assert report["summary"]["passed"] > 0
    checked = {check["file_path"] for check in report["results"]["passed_checks"]}
    assert {"/app/function.bicep", "/app/storage.bicep", "/app/remediator-role.bicep"} <= checked


def test_every_skipped_check_says_why(report: dict[str, Any]) -> None:
    for check in report["results"].get("skipped_checks", []):
        reason = check["check_result"].get("suppress_comment", "").strip()
        assert len(reason) > 20, f"{check['check_id']} on {check['resource']} is skipped without a reason"


def test_every_inline_skip_has_a_reason() -> None:
    skips = 0
    for path in sorted(INFRA.rglob("*.bicep")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            match = SKIP.search(line)
            if match is None:
                continue
            skips += 1
            reason = match.group(2).lstrip(":").strip()
            assert len(reason) > 20, (
                f"{path.relative_to(ROOT)}:{number}: {match.group(1)} skipped without a reason"
            )
    assert skips > 0
