"""Hostile input: whatever arrives, the parsers answer with a trigger or a named rejection, the
configuration loader with a policy or an error naming the key, and the HTTP endpoints with a
status and a JSON body. Nothing raises. (Property-based: `make test` runs a few hundred examples,
`make fuzz` at least 10,000 per property.)"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import arm_docs as docs
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from recording_arm import RecordingAdapter, recording_gateway

from remediation.api import audit_page, replay
from remediation.arm import ArmGateway
from remediation.events import MAX_EVENT_BYTES, parse_event, parse_work
from remediation.model import QueuedEvent, Recheck, Rejection, Trigger
from remediation.policy import PolicyError, load_policy
from remediation.resource_ids import (
    AUTOSCALE_SETTING_TYPE,
    NIC_TYPE,
    PUBLIC_IP_TYPE,
    SCALE_SET_TYPE,
    UNIFORM_NIC_TYPE,
    UNIFORM_VM_TYPE,
    VIRTUAL_MACHINE_TYPE,
    InvalidResourceId,
    ResourceId,
)
from remediation.settings import Settings, SettingsError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=15), children, max_size=5)
    ),
    max_leaves=30,
)


def valid_event() -> dict[str, Any]:
    return docs.write_event(docs.set_id("web"), event_id="0b6a9a3c-1a4e-4a5e-9d0c-3f4e5d6c7b8a")


def check_parsed(result: Trigger | Rejection) -> None:
    if isinstance(result, Rejection):
        assert result.reason and result.event_id
    else:
        assert ResourceId.parse(result.resource_id.value) == result.resource_id
        assert result.operation.lower().startswith(result.resource_id.type.lower())


@given(json_values)
def test_any_json_is_a_trigger_or_a_named_rejection(value: object) -> None:
    check_parsed(parse_event(value))


@given(
    st.sampled_from(["id", "eventType", "data", "data.resourceUri", "data.operationName", "data.status"]),
    json_values,
)
def test_any_field_of_a_valid_event_replaced_by_anything(path: str, value: object) -> None:
    event = valid_event()
    *parents, last = path.split(".")
    target = event
    for key in parents:
        target = target[key]
    target[last] = value
    check_parsed(parse_event(event))


@given(st.lists(st.booleans(), min_size=len(docs.set_id("web")), max_size=len(docs.set_id("web"))))
def test_resource_ids_in_any_casing_name_the_same_set(flips: list[bool]) -> None:
    original = docs.set_id("web")
    cased = "".join(c.upper() if flip else c.lower() for c, flip in zip(original, flips, strict=True))
    event = valid_event()
    event["data"]["resourceUri"] = cased
    trigger = parse_event(event)
    assert isinstance(trigger, Trigger) and trigger.resource_id == ResourceId.parse(original)


@given(st.text(alphabet=string.printable + "é%/\\\u0000\u202e", min_size=1, max_size=30))
def test_odd_characters_in_a_name_are_rejected_or_kept_exactly(name: str) -> None:
    event = valid_event()
    event["data"]["resourceUri"] = docs.set_id("web").replace("/web", f"/{name}")
    result = parse_event(event)
    check_parsed(result)
    if isinstance(result, Trigger):  # kept exactly: nothing stripped, collapsed or decoded
        assert result.resource_id.name == name


# Ids built to escape their URL: each of these, as a segment of its own or in place of one, makes
# the id name another URL (a client removes dot segments, a server decodes percent-encoding, '?'
# and '#' end the path), or holds what no ARM name holds (controls, other spaces, lookalike
# punctuation). Unicode letters (another name, not another URL) are names, read as they are.
ESCAPING_SEGMENTS = [
    ".",
    "..",
    "",
    "...",
    "web.",
    "%2e%2e",
    "%2E%2e",
    "%2F",
    "..%2F..",
    "%00",
    "\x00",
    "\x1f",
    "\x7f",
    "\t",
    "\n",
    "\r",
    " ",
    "\u00a0",
    "\u200b",
    "\u202e",
    "\ufeff",
    "\uff0e\uff0e",  # fullwidth full stops
    "\u2024\u2024",  # one dot leaders
    "\uff0f",  # fullwidth solidus
    "\u2215",  # division slash
    "?api-version=2024-11-01",
    "#fragment",
    "a?b",
    "a#b",
    "\\",
    "..\\..",
]
# The same, appended to a segment that was valid.
ESCAPING_SUFFIXES = [".", "%2F..", "%2e", "?x=1", "#", "\x00", "\uff0e", " ", "\u200b", "\\"]
ARM_NAMES = st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9_.()\-]{0,30}[A-Za-z0-9_()\-])?", fullmatch=True)
RESOURCES = [
    (SCALE_SET_TYPE, docs.set_id("web"), ArmGateway.get_scale_set),
    (NIC_TYPE, docs.nic_id("web-nic"), ArmGateway.get_nic),
    (PUBLIC_IP_TYPE, docs.public_ip_id("web-ip"), ArmGateway.get_public_ip),
    (VIRTUAL_MACHINE_TYPE, docs.vm_id("web_1"), ArmGateway.get_vm),
    (UNIFORM_VM_TYPE, f"{docs.set_id('web')}/virtualMachines/3", ArmGateway.get_uniform_instance),
    (
        UNIFORM_NIC_TYPE,
        f"{docs.set_id('web')}/virtualMachines/3/networkInterfaces/nic",
        ArmGateway.get_uniform_nic,
    ),
    (
        AUTOSCALE_SETTING_TYPE,
        f"{docs.PREFIX}/Microsoft.Insights/autoscalesettings/web-autoscale",
        ArmGateway.get_autoscale_setting,
    ),
]


@st.composite
def ids_built_to_escape(draw: st.DrawFn) -> tuple[int, str, bool]:
    """(which of RESOURCES, an id of its type with names changed and escapes built in, whether
    any escape was). Valid names first, then the escapes, so each escape stays in the id."""
    which = draw(st.integers(0, len(RESOURCES) - 1))
    segments = RESOURCES[which][1][1:].split("/")
    names = [3, *range(7, len(segments), 2)]  # the resource group and each name (0-based)
    for _ in range(draw(st.integers(0, 2))):
        segments[draw(st.sampled_from(names))] = draw(ARM_NAMES)
    if draw(st.booleans()):
        segments[1] = str(draw(st.uuids())).upper() if draw(st.booleans()) else str(draw(st.uuids()))
    escapes = draw(st.integers(0, 3))
    for _ in range(escapes):
        how = draw(st.sampled_from(["insert", "replace", "append", "trailing"]))
        if how == "insert":
            segments.insert(draw(st.integers(0, len(segments))), draw(st.sampled_from(ESCAPING_SEGMENTS)))
        elif how == "replace":
            segments[draw(st.integers(0, len(segments) - 1))] = draw(st.sampled_from(ESCAPING_SEGMENTS))
        elif how == "append":
            segments[draw(st.integers(0, len(segments) - 1))] += draw(st.sampled_from(ESCAPING_SUFFIXES))
        else:
            segments.extend([""] * draw(st.integers(1, 2)))  # trailing slashes
    return which, "/" + "/".join(segments), escapes > 0


@pytest.fixture(scope="module")
def recorded_arm() -> Iterator[tuple[ArmGateway, RecordingAdapter]]:
    with recording_gateway() as recorded:
        yield recorded


@given(ids_built_to_escape())
def test_an_id_built_to_escape_is_refused_naming_the_segment_or_read_at_exactly_its_url(
    recorded_arm: tuple[ArmGateway, RecordingAdapter], built: tuple[int, str, bool]
) -> None:
    """What the product does with an id from outside: parse it as the operation's type, then read
    it through the gateway. Refused, the message names the faulty segment by position and value;
    accepted, the request the SDK puts on the wire is for exactly the id's path."""
    which, value, escaped = built
    resource_type, _, read = RESOURCES[which]
    segments = value[1:].split("/")
    try:
        parsed = ResourceId.parse(value, expected_type=resource_type)
    except InvalidResourceId as error:
        why = str(error).removeprefix(f"resource id {value!r}")
        named = re.match(r": segment (\d+) ", why)
        if escaped:
            assert named, str(error)
        if named:
            segment = segments[int(named.group(1)) - 1]
            assert why.startswith(
                f": segment {named.group(1)} {segment!r} " if segment else f"{named.group(0)}is empty"
            )
        return
    assert not escaped, f"accepted {value!r}"
    arm, adapter = recorded_arm
    before = len(adapter.targets)
    assert read(arm, parsed) is None  # answered 404
    (target,) = adapter.targets[before:]
    path, _, query = target.partition("?")
    assert query.startswith("api-version=")
    requested = [unquote(part) for part in path[1:].split("/")]
    assert len(requested) == len(segments), f"{value!r} was requested as {target!r}"
    for position, (sent, asked) in enumerate(zip(requested, segments, strict=True)):
        # Names exactly (the group and each name); the rest in any case: keywords, the namespace,
        # types, and the subscription (a GUID: the client per subscription keeps the first casing).
        name = position == 3 or (position >= 7 and position % 2 == 1)
        assert sent == asked if name else sent.lower() == asked.lower(), f"{value!r} -> {target!r}"


def test_an_oversized_event_is_rejected_with_the_limit() -> None:
    event = valid_event()
    event["data"]["claims"] = {"padding": "x" * MAX_EVENT_BYTES}
    rejection = parse_event(event)
    assert isinstance(rejection, Rejection) and f"over the {MAX_EVENT_BYTES}-byte limit" in rejection.reason


@given(st.binary(max_size=200) | st.text(max_size=200) | json_values.map(json.dumps))
def test_any_work_message_is_a_look_a_queued_event_or_a_named_rejection(body: object) -> None:
    result = parse_work(body)
    if isinstance(result, Rejection):
        assert result.reason
    else:
        assert isinstance(result, Recheck | QueuedEvent)
        assert parse_work(result.to_message()) == result, "a message says what it was made from"


@given(json_values)
def test_any_policy_document_loads_or_names_the_key(document: object) -> None:
    try:
        load_policy(json.dumps(document), source="policy")
    except PolicyError as error:
        assert str(error).startswith("policy: ") and len(str(error)) > len("policy: ")


POLICY_KEYS = ["scopes", "tags_may_relax", "remediate_origins", "keep_detached_public_ips", "scale_to_zero"]


@given(st.dictionaries(st.sampled_from(POLICY_KEYS), json_values, min_size=1))
def test_known_policy_keys_with_any_values_load_or_name_the_key(document: dict[str, Any]) -> None:
    try:
        load_policy(json.dumps(document))
    except PolicyError as error:
        assert any(key in str(error) for key in document)


SETTINGS_KEYS = [
    "ARM_ENDPOINT",
    "ARM_CREDENTIAL",
    "ARM_POLL_INTERVAL_SECONDS",
    "ARM_RETRY_TOTAL",
    "AUDIT_TABLE",
    "RECHECK_QUEUE",
    "RECHECK_DELAYS_SECONDS",
    "REMEDIATION_DRY_RUN",
    "STORAGE_RETRY_TOTAL",
    "ARCHIVE_CONTAINER",
    "ARCHIVE_RETENTION_DAYS",
    "LEDGER_CONTAINER",
    "INTERRUPTED_WRITE_GRACE_SECONDS",
]


@given(st.dictionaries(st.sampled_from(SETTINGS_KEYS), st.text(max_size=30), min_size=1))
def test_any_app_settings_validate_or_name_the_key(values: dict[str, str]) -> None:
    try:
        Settings.from_env({"RemediationStorage": "UseDevelopmentStorage=true", **values})
    except SettingsError as error:
        assert any(key in str(error) for key in values)


@pytest.fixture(scope="module")
def offline_settings() -> Settings:
    """Settings whose storage is unreachable: the endpoints must answer bad input before any I/O."""
    return Settings.from_env(
        {
            "RemediationStorage": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            "AccountKey=a2V5;TableEndpoint=http://127.0.0.1:9/devstoreaccount1;"
            "QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;",
            "STORAGE_RETRY_TOTAL": "0",
        }
    )


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(
        st.sampled_from(["since", "until", "outcome", "page_size", "continuation"]), st.text(max_size=20)
    )
)
def test_audit_endpoint_parameters_are_validated_before_storage(
    offline_settings: Settings, params: dict[str, str]
) -> None:
    answer = audit_page(params, offline_settings)
    assert answer.status in (400, 503)
    assert answer.body["error"]
    if answer.status == 400:
        assert any(key in answer.body["error"] for key in params)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_replay_endpoint_answers_any_body_with_a_status_and_a_reason(
    offline_settings: Settings, body: bytes
) -> None:
    assume(b'"events"' not in body)  # a well-formed events list goes on to storage (tested with Azurite)
    answer = replay(body, offline_settings)
    assert answer.status in (400, 404, 413, 503)
    assert answer.body["error"]


@pytest.mark.parametrize("page_size", ["¹", "٣", "0", "1001", "-1", " 5"])
def test_a_page_size_that_is_not_an_ascii_whole_number_is_named(
    offline_settings: Settings, page_size: str
) -> None:
    answer = audit_page({"page_size": page_size}, offline_settings)
    assert answer.status == 400 and "page_size" in answer.body["error"]
