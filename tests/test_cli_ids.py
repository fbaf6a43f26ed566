"""The command's arguments and inputs that name Azure resources are checked as the ids ARM reads
are: a sweep's --subscription must be a GUID, an audit's --scale-set a scale set's id, and a
what-if inventory's ids must parse; each refusal names what is wrong, before anything is read."""

from __future__ import annotations

import json
from pathlib import Path

import arm_docs as docs
import pytest

from remediation.cli import main


@pytest.mark.parametrize("subscription", ["..", f"{docs.SUB}/..", f"{docs.SUB}/", "%2e%2e", ""])
def test_a_sweep_of_a_subscription_that_is_no_guid_is_refused_before_anything_is_read(
    capsys: pytest.CaptureFixture[str], subscription: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["sweep", "--subscription", subscription])
    assert exited.value.code == 2
    assert f"argument --subscription: subscription {subscription!r} is not a GUID" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("given", "named"),
    [
        (docs.nic_id("web-nic"), "is a Microsoft.Network/networkInterfaces, not a Microsoft.Compute/"),
        (f"{docs.set_id('web')}/..", "segment 9 '..' is a relative path segment"),
        (f"{docs.set_id('web')}/", "segment 9 is empty"),
    ],
)
def test_an_audit_of_a_scale_set_takes_a_scale_set_id_only(
    capsys: pytest.CaptureFixture[str], given: str, named: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["audit", "--scale-set", given])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --scale-set: " in err and named in err


def test_a_whatif_inventory_with_an_escaping_id_is_refused_naming_the_file_and_segment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vm = docs.flex_instance("web", "0a1b2c3d", "web1Nic-0a1b2c3d")
    vm["properties"]["networkProfile"]["networkInterfaces"] = [
        {"id": f"{docs.PREFIX}/Microsoft.Network/networkInterfaces/.", "properties": {"primary": True}}
    ]
    sets = tmp_path / "vmss.json"
    sets.write_text(json.dumps([docs.scale_set("web", 1, {"remediation.mode": "strip"})]))
    vms = tmp_path / "vms.json"
    vms.write_text(json.dumps({"value": [vm]}))

    assert main(["whatif", "--inventory", str(sets), str(vms)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"remediation whatif: {vms}[0]: resource id ")
    assert "segment 8 '.' is a relative path segment" in err
