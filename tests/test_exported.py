"""Specification of reading exports (``remediation.exported``), the one reader of the what-if
planner and the simulator's seeding: the same estate exported as ARM JSON, as ``az ... list``
prints it, or as a Resource Graph result (``az graph query``, objects or the table format) is
planned the same; a page of a longer Graph result, or a table row that does not fit, is refused
naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import arm_docs as docs
import pytest

from remediation.cli import main

# az vm / az vmss print the SDK's attribute names in camel case; az network prints REST names.
SDK_CASING = {
    "publicIPAddressConfiguration": "publicIpAddressConfiguration",
    "publicIPAddress": "publicIpAddress",
}
SUB_RESOURCES = ("ipConfigurations", "networkInterfaceConfigurations")


def arm_estate() -> list[dict[str, Any]]:
    return [
        docs.scale_set("web", 2, {"remediation.mode": "strip"}),
        docs.flex_instance("web", "0a1b2c3d", "web1Nic-0a1b2c3d"),
        docs.hand_added_vm("web", "app-vm-01", "app-vm-01-nic"),
        docs.nic("web1Nic-0a1b2c3d", "web_0a1b2c3d", "pip1"),
        docs.nic("app-vm-01-nic", "app-vm-01", "pip2"),
    ]


def _az_object(value: Any, sdk: bool) -> Any:
    """`resourceGroup` on every object, sub-resources flattened, the SDK's key casing for Compute."""
    if isinstance(value, list):
        return [_az_object(item, sdk) for item in value]
    if not isinstance(value, dict):
        return value
    flat = {k: v for k, v in value.items() if k != "properties"}
    flat.update(value.get("properties", {}) if isinstance(value.get("properties"), dict) else {})
    out = {(SDK_CASING.get(k, k) if sdk else k): _az_object(v, sdk) for k, v in flat.items()}
    if "id" in out:
        out["resourceGroup"] = docs.GROUP
    return out


def az_list(doc: dict[str, Any]) -> dict[str, Any]:
    """One resource as `az vmss list`, `az vm list` or `az network nic list` prints it."""
    return dict(_az_object(doc, sdk=doc["type"].startswith("Microsoft.Compute")))


def graph_row(doc: dict[str, Any]) -> dict[str, Any]:
    """One row of `Resources` as Resource Graph answers: ARM's shape, a few columns added, the
    type in lower case."""
    return {**doc, "type": doc["type"].lower(), "resourceGroup": docs.GROUP, "subscriptionId": docs.SUB}


def whatif(tmp_path: Path, capsys: pytest.CaptureFixture[str], document: object) -> tuple[int, str, str]:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(document))
    code = main(["whatif", "--inventory", str(path), "--format", "json"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def planned(out: str) -> list[tuple[str, str, str]]:
    return [(r["instance"].rsplit("/", 1)[-1], r["origin"], r["action"]) for r in json.loads(out)]


EXPECTED = [
    ("web_0a1b2c3d", "scale-set", "detach-public-ip+delete-public-ip"),
    ("app-vm-01", "hand-added", "none"),
]


def test_az_list_output_is_planned_as_its_arm_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exported = [az_list(doc) for doc in arm_estate()]
    assert "properties" not in exported[0] and "publicIpAddressConfiguration" in json.dumps(exported[0])

    code, out, err = whatif(tmp_path, capsys, exported)

    assert code == 0, err
    assert planned(out) == EXPECTED
    assert whatif(tmp_path, capsys, arm_estate())[1] == out, "the same rows as from ARM JSON"


def test_a_resource_graph_result_is_planned_as_its_arm_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [graph_row(doc) for doc in arm_estate()]
    answer = {"count": len(rows), "data": rows, "skip_token": None, "total_records": len(rows)}

    code, out, err = whatif(tmp_path, capsys, answer)

    assert code == 0, err
    assert planned(out) == EXPECTED


def test_a_resource_graph_table_is_planned_as_its_arm_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [graph_row(doc) for doc in arm_estate()]
    names = sorted({key for row in rows for key in row})
    table = {
        "totalRecords": len(rows),
        "count": len(rows),
        "resultTruncated": "false",
        "data": {
            "columns": [{"name": name, "type": "object"} for name in names],
            "rows": [[row.get(name) for name in names] for row in rows],
        },
    }

    code, out, err = whatif(tmp_path, capsys, table)

    assert code == 0, err
    assert planned(out) == EXPECTED


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"count": 1, "data": [], "skip_token": "ew0KICAi", "total_records": 1500}, "more pages"),
        ({"count": 1, "data": [], "resultTruncated": "true"}, "more pages"),
        ({"data": {"columns": [{"name": "id"}], "rows": [["a", "b"]]}}, "data.rows[0]: expected one value"),
        ({"data": "nothing"}, "'data' is neither a list of rows nor a table"),
    ],
    ids=["skip-token", "truncated", "row-does-not-fit", "data-not-rows"],
)
def test_a_graph_result_that_is_not_the_whole_estate_is_refused_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: object, message: str
) -> None:
    code, _, err = whatif(tmp_path, capsys, document)
    assert code == 2
    assert "export.json" in err and message in err


def test_the_simulator_seeds_az_output_through_the_same_reader() -> None:
    from sim import ArmSimulator

    with ArmSimulator() as arm:
        assert arm.seed([az_list(doc) for doc in arm_estate()]) == 5
        nics = arm.resources("Microsoft.Network/networkInterfaces")
        (nic,) = [n for n in nics if n["name"] == "app-vm-01-nic"]
    assert nic["properties"]["ipConfigurations"][0]["properties"]["publicIPAddress"] == {
        "id": docs.public_ip_id("pip2")
    }
