"""Shared pieces of the authorization tests: callers with their own tokens, ARM's 403 forms, the
recorded role definitions.

ARM's two refusals are matched against the form public reports of real answers quote (Azure/mpf's
parsers and their test messages, Azure/CloudShell#561, Azure/aad-pod-identity#613), not against the
simulator's own strings, so a wording drift in the simulator fails here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from recordings import interactions
from sim_helpers import SHARED, SUB, Clients, StaticCredential, make_clients, make_jwt

from sim import ArmSimulator

AUTH_API = "api-version=2022-04-01"
RECORDING = SHARED / "fixtures" / "recorded-arm" / "roledefinitionclient.yaml"

AUTHORIZATION_FAILED = re.compile(
    r"^The client '(?P<client>[^']+)' with object id '(?P<oid>[^']+)' does not have authorization to "
    r"perform action '(?P<action>[^']+)' over scope '(?P<scope>[^']+)' or the scope is invalid\. If "
    r"access was recently granted, please refresh your credentials\.$"
)
LINKED_AUTHORIZATION_FAILED = re.compile(
    r"^The client '(?P<client>[^']+)' with object id '(?P<oid>[^']+)' has permission to perform action "
    r"'(?P<action>[^']+)' on scope '(?P<scope>[^']+)'; however, it does not have permission to perform "
    r"action\(s\) '(?P<linked_actions>[^']+)' on the linked scope\(s\) '(?P<linked_scopes>[^']+)' "
    r"\(respectively\) or the linked scope\(s\) are invalid\.$"
)


@dataclass(frozen=True)
class Caller:
    """A principal of its own: its object id (for grants), client name, and SDK clients."""

    oid: str
    client: str
    clients: Clients


def caller(sim: ArmSimulator, name: str, **claims: str) -> Caller:
    """A service principal `name` (appid and oid both derived from it unless given)."""
    token_claims = {"appid": f"app-{name}", "oid": f"oid-{name}", **claims}
    token = make_jwt(token_claims)
    return Caller(
        ArmSimulator.principal_of(token),
        token_claims.get("upn") or token_claims["appid"],
        make_clients(sim, StaticCredential(token)),
    )


def refused(call: Any) -> HttpResponseError:
    """The HttpResponseError a call (a no-argument callable) raises; fails the test if none."""
    with pytest.raises(HttpResponseError) as caught:
        call()
    return caught.value


def authorization_failure(error: HttpResponseError) -> dict[str, str]:
    """The parts of a 403 AuthorizationFailed, checked against ARM's documented form."""
    assert error.status_code == 403, error
    assert error.error is not None and error.error.code == "AuthorizationFailed", error
    match = AUTHORIZATION_FAILED.match(str(error.error.message))
    assert match is not None, error.error.message
    response: Any = error.response
    assert response is not None and response.headers.get("x-ms-failure-cause") == "gateway"
    return match.groupdict()


def linked_failure(error: HttpResponseError) -> dict[str, Any]:
    """The parts of a 403 LinkedAuthorizationFailed; `links` pairs the actions and scopes respectively."""
    assert error.status_code == 403, error
    assert error.error is not None and error.error.code == "LinkedAuthorizationFailed", error
    match = LINKED_AUTHORIZATION_FAILED.match(str(error.error.message))
    assert match is not None, error.error.message
    parts: dict[str, Any] = match.groupdict()
    actions, scopes = parts["linked_actions"].split(","), parts["linked_scopes"].split(",")
    assert len(actions) == len(scopes)
    parts["links"] = set(zip(actions, scopes, strict=True))
    return parts


def send(clients: Clients, method: str, path: str, body: Any = None, api: str = AUTH_API) -> Any:
    separator = "&" if "?" in path else "?"
    return clients.network.send_request(HttpRequest(method, f"{path}{separator}{api}", json=body))


def scope_of(group: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{group}"


def recorded_bodies(url_part: str) -> list[Any]:
    """Response bodies of the recorded role-definition interactions whose URL contains `url_part`."""
    return [i.body for i in interactions(RECORDING.name) if url_part in i.url and i.body is not None]
