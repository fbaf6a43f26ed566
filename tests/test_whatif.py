"""Specification of `remediation whatif`: plan against exported ARM JSON, with no ARM at all."""

from __future__ import annotations

import json
from pathlib import Path

import arm_docs as docs
import pytest

from remediation.cli import main


def export(tmp_path: Path, name: str, document: object) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


def test_whatif_lists_each_finding_with_evidence_and_planned_action(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sets = export(
        tmp_path,
        "vmss.json",
        [docs.scale_set("web", 2, {"remediation.mode": "strip"}), docs.scale_set("open", 1)],
    )
    vms = export(
        tmp_path,
        "vms.json",
        {
            "value": [
                docs.flex_instance("web", "0a1b2c3d", "web1Nic-0a1b2c3d"),
                docs.hand_added_vm("web", "app-vm-01", "app-vm-01-nic"),
                docs.flex_instance("open", "11111111", "open1Nic-11111111"),
            ]
        },
    )
    nics = export(
        tmp_path,
        "nics.json",
        [
            docs.nic("web1Nic-0a1b2c3d", "web_0a1b2c3d", "pip1"),
            docs.nic("app-vm-01-nic", "app-vm-01", "pip2"),
            docs.nic("open1Nic-11111111", "open_11111111", "pip3"),
        ],
    )

    assert main(["whatif", "--inventory", sets, vms, nics, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)

    assert [(r["instance"].rsplit("/", 1)[-1], r["origin"], r["action"]) for r in rows] == [
        ("web_0a1b2c3d", "scale-set", "detach-public-ip+delete-public-ip"),
        ("app-vm-01", "hand-added", "none"),
    ], "the unrestricted set 'open' is not planned"
    assert rows[0]["public_ip"] == [docs.public_ip_id("pip1")]
    assert rows[0]["mode"] == "strip" and len(rows[0]["evidence"]) == 4
    assert rows[0]["scale_set"] == docs.set_id("web") and rows[0]["nic"] == docs.nic_id("web1Nic-0a1b2c3d")


def test_whatif_applies_a_policy_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = export(
        tmp_path,
        "all.json",
        [
            docs.scale_set("web", 1),
            docs.flex_instance("web", "0a1b2c3d", "w1Nic-0a1b2c3d"),
            docs.nic("w1Nic-0a1b2c3d", "web_0a1b2c3d", "pip1"),
        ],
    )
    policy = export(
        tmp_path, "policy.json", {"scopes": [{"scope": f"/subscriptions/{docs.SUB}", "mode": "evict"}]}
    )

    assert main(["whatif", "--inventory", inventory, "--config", policy, "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["mode"] == "evict" and row["action"] == "delete-vm"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1]", "expected an ARM resource object, got int"),
        ('[{"id": "x"}]', "is not of the form"),
    ],
)
def test_whatif_names_the_file_and_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert main(["whatif", "--inventory", str(path)]) == 2
    error = capsys.readouterr().err
    assert "bad.json" in error and message in error


def test_a_policy_error_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = export(tmp_path, "empty.json", [])
    policy = export(
        tmp_path, "policy.json", {"scopes": [{"scope": f"/subscriptions/{docs.SUB}", "mode": "nuke"}]}
    )
    assert main(["whatif", "--inventory", inventory, "--config", policy]) == 2
    assert (
        "scopes[0].mode: 'nuke' is not one of audit, strip, evict, scale-to-zero" in capsys.readouterr().err
    )
