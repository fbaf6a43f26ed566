"""No token, key or connection string appears in a log line or an audit record, even with every
logger at DEBUG while a storm is remediated, an event is rejected and storage settings are wrong."""

from __future__ import annotations

import json
import logging

import pytest
from estate import Estate

from localazure.azurite import ACCOUNT_KEY
from remediation.credentials import LoopbackCredential
from remediation.settings import Settings, SettingsError


def secrets(estate: Estate) -> list[str]:
    token = LoopbackCredential().get_token("https://management.azure.com/.default").token
    return [ACCOUNT_KEY, ACCOUNT_KEY[:20], "AccountKey=", token, token.split(".")[1], "Bearer ey"]


def test_no_secret_reaches_a_log_line_or_an_audit_record(
    estate: Estate, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        estate.create_set("web", tags={"remediation.mode": "strip"})
        estate.scale("web", 2)
        events = estate.events()
        for event in events:
            estate.deliver(event)
        estate.deliver({**events[0], "id": "broken", "data": None})

    lines = [record.getMessage() for record in caplog.records] + [
        str(value) for record in caplog.records for value in record.__dict__.values()
    ]
    audit = json.dumps([record.as_json() for record in estate.audit()])
    for secret in secrets(estate):
        assert not any(secret in line for line in lines), f"a log line carries {secret[:8]}..."
        assert secret not in audit, f"an audit record carries {secret[:8]}..."


def test_a_settings_error_names_the_key_but_not_the_connection_string() -> None:
    bad = f"DefaultEndpointsProtocol=http;AccountKey={ACCOUNT_KEY};TableEndpoint=nonsense"
    with pytest.raises(SettingsError) as error:
        Settings.from_env({"RemediationStorage": bad, "AUDIT_TABLE": "x!"})
    assert "AUDIT_TABLE" in str(error.value) and ACCOUNT_KEY not in str(error.value)
