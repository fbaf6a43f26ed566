"""The ARM gateway with its HTTP transport's last step replaced: every request is answered 404,
as ARM answers for a resource that is not there, and the request target it would have put on
the wire is kept. Everything before that step is the product's own: ``ArmGateway`` builds the
call, the azure-mgmt client the URL, azure-core's pipeline its policies, requests prepares the
URL (urllib3's ``parse_url``, which removes ``.`` and ``..`` segments), and urllib3's
``_encode_target`` the target sent (as ``HTTPConnectionPool.urlopen`` does)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.url import _encode_target

from remediation import arm
from remediation.arm import ArmGateway
from remediation.credentials import LoopbackCredential
from remediation.settings import Settings


class RecordingAdapter(HTTPAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.targets.append(_encode_target(request.path_url))
        response = requests.Response()
        response.status_code = 404
        response.reason = "Not Found"
        response.url = str(request.url)
        response.request = request
        response.raw = SimpleNamespace()  # azure-core sets enforce_content_length on it
        # A full read budget in every answer: the gateway's pacing never waits (pacing.py).
        response.headers.update(
            {
                "Content-Type": "application/json; charset=utf-8",
                "x-ms-ratelimit-remaining-subscription-reads": "249",
            }
        )
        response._content = json.dumps(
            {"error": {"code": "ResourceNotFound", "message": "The resource was not found."}}
        ).encode()
        return response


@contextmanager
def recording_gateway() -> Iterator[tuple[ArmGateway, RecordingAdapter]]:
    """A gateway for the public cloud's endpoint whose requests go to one ``RecordingAdapter``."""
    from azure.core.pipeline.transport import RequestsTransport

    adapter = RecordingAdapter()

    def transport(connection: Mapping[str, Any]) -> Any:
        session = requests.Session()
        session.mount("https://", adapter)
        return RequestsTransport(session=session, session_owner=True, **connection)

    settings = Settings.from_env({"RemediationStorage": "UseDevelopmentStorage=true", "ARM_RETRY_TOTAL": "0"})
    original = arm._pooled_transport
    arm._pooled_transport = transport  # the clients, made lazily, share the one it makes
    gateway = ArmGateway(settings, LoopbackCredential())
    try:
        yield gateway, adapter
    finally:
        arm._pooled_transport = original
        gateway.close()
