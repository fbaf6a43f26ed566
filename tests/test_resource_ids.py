"""Specification of the resource-id parser: each form that would make an id name another URL is
refused with a message naming the segment (its position, 1 for ``subscriptions``, and value),
an id of another type than the operation's is refused naming both, and every id ARM really sent
(recorded traffic, the REST specs' examples) is still accepted."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import arm_docs as docs
import pytest
from recording_arm import RecordingAdapter, recording_gateway

from remediation.arm import ArmGateway
from remediation.events import parse_work
from remediation.model import Rejection
from remediation.resource_ids import (
    AUTOSCALE_SETTING_TYPE,
    NIC_TYPE,
    PUBLIC_IP_TYPE,
    SCALE_SET_TYPE,
    InvalidResourceId,
    ResourceId,
    WrongResourceType,
    subscription_id,
)

SET = docs.set_id("web")  # segments: 1 subscriptions, 2 the GUID, ... 7 virtualMachineScaleSets, 8 web
SHARED = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (f"{SET}/../..", "segment 9 '..' is a relative path segment"),
        (f"{SET[:-3]}..", "segment 8 '..' is a relative path segment"),
        (f"{SET[:-3]}.", "segment 8 '.' is a relative path segment"),
        (SET.replace("/rg-app/", "/../"), "segment 4 '..' is a relative path segment"),
        (f"{SET}/", "segment 9 is empty"),
        (f"/{SET}", "segment 1 is empty"),
        (SET.replace("/providers/", "//providers/"), "segment 5 is empty"),
        (f"{SET[:-3]}%2e%2e", "segment 8 '%2e%2e' is not a valid name: it holds '%' (percent-encoding)"),
        (f"{SET[:-3]}web%2F..", "segment 8 'web%2F..' is not a valid name: it holds '%'"),
        (f"{SET}\x00", "segment 8 'web\\x00' is not a valid name: it holds the control character U+0000"),
        (f"{SET}\u202e", "segment 8 'web\\u202e' is not a valid name: it holds the control character U+202E"),
        (f"{SET}\n", "segment 8 'web\\n' is not a valid name: it holds the control character U+000A"),
        (f"{SET} ", "segment 8 'web ' is not a valid name: it holds the space character U+0020"),
        (f"{SET}\u00a0", "segment 8 'web\\xa0' is not a valid name: it holds the space character U+00A0"),
        (
            f"{SET[:-3]}\uff0e\uff0e",
            "segment 8 '\uff0e\uff0e' is not a valid name: it holds the character U+FF0E, not a letter",
        ),
        (f"{SET[:-3]}\u2215", "segment 8 '\u2215' is not a valid name: it holds the character U+2215"),
        (
            SET.replace("rg-app", "\u212a8s"),
            "segment 4 '\u212a8s' is not a valid name: it holds the character U+212A, whose case",
        ),
        (f"{SET[:-3]} web", "segment 8 ' web' is not a valid name: it holds the space character U+0020"),
        (f"{SET}?api-version=1", "segment 8 'web?api-version=1' is not a valid name: it holds '?'"),
        (f"{SET}#x", "segment 8 'web#x' is not a valid name: it holds '#'"),
        (f"{SET}\\..", "segment 8 'web\\\\..' is not a valid name: it holds '\\\\'"),
        (SET.replace("/web", "/we:b"), "segment 8 'we:b' is not a valid name: it holds ':'"),
        (f"{SET}.", "segment 8 'web.' is not a valid name: it ends with '.'"),
        (f"{SET[:-3]}...", "segment 8 '...' is not a valid name: it ends with '.'"),
        (SET.replace("rg-app", "rg-app."), "segment 4 'rg-app.' is not a valid name: it ends with '.'"),
        (f"{SET[:-3]}{'w' * 201}", "is not a valid name: it is longer than 200 characters"),
    ],
)
def test_each_form_that_escapes_its_url_is_refused_naming_the_segment(value: str, message: str) -> None:
    with pytest.raises(InvalidResourceId) as refused:
        ResourceId.parse(value)
    assert message in str(refused.value)
    assert str(refused.value).startswith(f"resource id {value!r}: ")


@pytest.mark.parametrize(
    "value",
    [
        SET,
        SET.upper().replace("6A2E1C9D", "6a2e1c9d"),
        SET.replace("rg-app", "rg_(app).1"),
        SET.replace("/web", "/a..b"),  # dots inside a name are no path segment
        f"{SET}/virtualMachines/0/networkInterfaces/nic",
        docs.nic_id("nic") + "/ipConfigurations/ipconfig1",
        # ARM allows these, and refusing them would make a whole list unreadable (a sweep's
        # Resource Graph rows, a resource group's autoscale settings): a resource group with
        # Unicode letters (its pattern is ^[-\w._()]+$), an autoscale setting with a space.
        SET.replace("rg-app", "rg-équipe-北京"),
        f"{docs.PREFIX}/Microsoft.Insights/autoscalesettings/web scale rule",
        SET.replace("/web", "/w\u0435b"),  # a Cyrillic ie: another name, not another URL
        SET.replace("rg-app", "rg-cafe\u0301-\u0e20\u0e32\u0e29\u0e32-stra\u00dfe"),  # marks, as \w has them
    ],
)
def test_ids_arm_names_its_resources_with_are_accepted_as_they_are(value: str) -> None:
    assert ResourceId.parse(value).value == value


def test_a_unicode_resource_group_and_a_spaced_autoscale_name_are_read_at_their_own_url(
    gateway: tuple[ArmGateway, RecordingAdapter],
) -> None:
    from urllib.parse import unquote

    arm, adapter = gateway
    scale_set = SET.replace("rg-app", "rg-équipe")
    assert arm.get_scale_set(ResourceId.parse(scale_set)) is None  # answered 404
    setting = f"{docs.PREFIX}/Microsoft.Insights/autoscalesettings/web scale rule"
    assert arm.get_autoscale_setting(ResourceId.parse(setting)) is None
    (set_path, _), (setting_path, _) = (target.split("?") for target in adapter.targets[-2:])
    assert unquote(set_path) == scale_set and "%C3%A9" in set_path
    assert unquote(setting_path) == setting and "%20" in setting_path


def ids_in(folder: Path, pattern: str) -> Iterator[str]:
    """The resource ids (``.../providers/NS/type/name[/type/name...]``) in the files' text, request
    URLs and bodies alike. The REST specs' examples' placeholder subscription ``subid`` is read as
    a GUID; ids with template placeholders (``{vmss-name}``) are none."""
    shape = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/[^/]+(/[^/]+/[^/]+)+$", re.I)
    for path in sorted(folder.glob(pattern)):
        for found in re.finditer(r"/subscriptions/[^\"'\s?,\\{}]+", path.read_text(encoding="utf-8")):
            value = found.group(0).replace("/subid/", "/00000000-0000-0000-0000-000000000000/")
            if shape.match(value):
                yield value


@pytest.mark.parametrize(
    ("folder", "pattern", "at_least"),
    [
        (SHARED / "recorded-arm", "*.yaml", 48),
        (SHARED / "arm-examples", "*.json", 11),
        (FIXTURES / "arm-examples", "*.json", 11),
    ],
)
def test_every_id_in_recorded_traffic_and_the_specs_examples_is_accepted(
    folder: Path, pattern: str, at_least: int
) -> None:
    found = set(ids_in(folder, pattern))
    assert len(found) >= at_least, f"found only {sorted(found)}"
    for value in sorted(found):
        parsed = ResourceId.parse(value)
        assert parsed.value == value and ResourceId.parse(value, expected_type=parsed.type) == parsed


def test_an_id_of_another_type_than_expected_is_refused_naming_both() -> None:
    nic = docs.nic_id("web-nic")
    with pytest.raises(WrongResourceType) as refused:
        ResourceId.parse(nic, expected_type=SCALE_SET_TYPE)
    assert str(refused.value) == (
        f"resource id {nic!r} is a Microsoft.Network/networkInterfaces, "
        "not a Microsoft.Compute/virtualMachineScaleSets"
    )
    assert ResourceId.parse(nic, expected_type=NIC_TYPE.upper()).value == nic


def test_a_recheck_message_naming_a_nic_is_rejected_saying_so() -> None:
    rejection = parse_work(f'{{"scale_set": "{docs.nic_id("web-nic")}", "attempt": 0}}')
    assert isinstance(rejection, Rejection)
    assert "is a Microsoft.Network/networkInterfaces, not a Microsoft.Compute/virtualMachineScaleSets" in (
        rejection.reason
    )


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[ArmGateway, RecordingAdapter]]:
    with recording_gateway() as recorded:
        yield recorded


@pytest.mark.parametrize(
    ("read", "given", "expected"),
    [
        (ArmGateway.get_nic, docs.public_ip_id("web-ip"), NIC_TYPE),
        (ArmGateway.get_public_ip, docs.nic_id("web-nic"), PUBLIC_IP_TYPE),
        (ArmGateway.get_scale_set, docs.vm_id("web-vm"), SCALE_SET_TYPE),
        (ArmGateway.get_vm, f"{SET}/virtualMachines/0", "Microsoft.Compute/virtualMachines"),
        (ArmGateway.get_uniform_instance, docs.vm_id("web-vm"), "virtualMachineScaleSets/virtualMachines"),
        (ArmGateway.get_uniform_nic, docs.nic_id("web-nic"), "virtualMachines/networkInterfaces"),
        (ArmGateway.get_autoscale_setting, SET, AUTOSCALE_SETTING_TYPE),
        (ArmGateway.list_uniform_instances, docs.nic_id("web-nic"), SCALE_SET_TYPE),
        (ArmGateway.delete_public_ip, docs.nic_id("web-nic"), PUBLIC_IP_TYPE),
        (ArmGateway.delete_vm, SET, "Microsoft.Compute/virtualMachines"),
    ],
)
def test_the_gateway_refuses_an_id_of_another_type_before_any_request(
    gateway: tuple[ArmGateway, RecordingAdapter], read: Callable[..., object], given: str, expected: str
) -> None:
    arm, adapter = gateway
    before = len(adapter.targets)
    with pytest.raises(WrongResourceType) as refused:
        read(arm, ResourceId.parse(given))
    assert f"resource id {given!r} is a " in str(refused.value) and expected in str(refused.value)
    assert adapter.targets[before:] == []


def test_the_gateway_reads_an_accepted_id_at_its_own_url(
    gateway: tuple[ArmGateway, RecordingAdapter],
) -> None:
    arm, adapter = gateway
    nic = docs.nic_id("web-nic_(1).a")
    assert arm.get_nic(ResourceId.parse(nic)) is None  # answered 404
    path, query = adapter.targets[-1].split("?")
    assert path == nic.replace("(", "%28").replace(")", "%29") and query.startswith("api-version=")


@pytest.mark.parametrize("subscription", ["..", "6a2e1c9d-6f3b-4f57-9d3e-2b1f4c8e7a10/..", ""])
def test_the_gateway_refuses_a_subscription_that_is_no_guid_before_any_request(
    gateway: tuple[ArmGateway, RecordingAdapter], subscription: str
) -> None:
    arm, adapter = gateway
    before = len(adapter.targets)
    with pytest.raises(InvalidResourceId, match="is not a GUID"):
        arm.list_scale_sets(subscription)
    with pytest.raises(InvalidResourceId, match="is not a GUID"):
        arm.list_nics(subscription, "rg-app")
    assert adapter.targets[before:] == []


@pytest.mark.parametrize(
    ("group", "fault"), [("..", "is a relative path segment"), ("rg/..", "it holds '/'")]
)
def test_the_gateway_refuses_a_resource_group_that_would_escape_before_any_request(
    gateway: tuple[ArmGateway, RecordingAdapter], group: str, fault: str
) -> None:
    arm, adapter = gateway
    before = len(adapter.targets)
    with pytest.raises(InvalidResourceId) as refused:
        arm.list_public_ips(docs.SUB, group)
    assert str(refused.value) == f"resource group {group!r} {fault}" or fault in str(refused.value)
    assert adapter.targets[before:] == []


def test_a_subscription_with_a_trailing_newline_is_no_guid() -> None:
    with pytest.raises(InvalidResourceId, match="is not a GUID"):
        subscription_id(f"{docs.SUB}\n")
    with pytest.raises(InvalidResourceId, match="control character U\\+000A"):
        ResourceId.parse(SET.replace(docs.SUB, f"{docs.SUB}\n"))


def test_resources_arm_allows_beside_a_restricted_set_do_not_make_its_lists_unreadable() -> None:
    """A sweep's Resource Graph rows and a resource group's autoscale settings are read whole: a
    name ARM allows that the parser refused would fail the whole list, for every set beside it."""
    from remediation.resources import AutoscaleSetting, ScaleSet

    elsewhere = docs.scale_set("web", 1)
    elsewhere["id"] = elsewhere["id"].replace("/resourceGroups/rg-app/", "/resourceGroups/rg-équipe/")
    assert ScaleSet.from_arm(elsewhere).id.resource_group == "rg-équipe"
    setting = {
        "id": f"{docs.PREFIX}/Microsoft.Insights/autoscalesettings/other scale",
        "name": "other scale",
        "properties": {"enabled": True, "targetResourceUri": docs.set_id("other"), "profiles": []},
    }
    assert AutoscaleSetting.from_arm(setting).id.name == "other scale"
