"""Hostile input: whatever arrives, the parsers answer with a trigger or a named rejection, the
configuration loader with a policy or an error naming the key, and the HTTP endpoints with a
status and a JSON body. Nothing raises. (Property-based: `make test` runs a few hundred examples,
`make fuzz` at least 10,000 per property.)"""

from __future__ import annotations

import json
import string
from typing import Any

import arm_docs as docs
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from remediation.api import audit_page, replay
from remediation.events import MAX_EVENT_BYTES, parse_event, parse_work
from remediation.model import QueuedEvent, Recheck, Rejection, ResourceId, Trigger
from remediation.policy import PolicyError, load_policy
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
    if isinstance(result, Trigger):  # a trailing slash is tolerated, as ARM does
        assert result.resource_id.name == name.rstrip("/")


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
