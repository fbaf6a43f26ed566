"""Credentials: the managed identity in Azure, and a fixed token for the local simulator only."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from remediation.events import caller_from_claims
from remediation.model import Caller
from remediation.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, TokenCredential


class LoopbackCredential:
    """A fixed, unsigned token for the local ARM simulator (Settings refuses it for real endpoints).

    JWT-shaped so the simulator can put the caller's claims into the events it emits, as ARM does.
    """

    APP_ID = "00000000-0000-0000-0000-00000000beef"  # the remediator's (application and object id)

    def __init__(self, principal: str = APP_ID, name: str = "vmss-pip-remediator (local)") -> None:
        """The remediator's token; the local stand-in makes others (``principal``: the id the
        simulator authorises and throttles by) for the estate's owner and other writers."""

        def part(value: Mapping[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

        claims = {"appid": principal, "name": name, "oid": principal}
        self._token = f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.local"

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + 3600)


def arm_credential(settings: Settings) -> TokenCredential:
    if settings.arm_credential == "loopback":
        return LoopbackCredential()
    return managed_identity(settings)


def managed_identity(settings: Settings) -> TokenCredential:
    """The app's (user-assigned, when ``AZURE_CLIENT_ID`` names it) managed identity."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=settings.managed_identity_client_id or None)


ARM_SCOPE = "https://management.azure.com/.default"


def token_caller(credential: TokenCredential) -> Caller:
    """Who the credential is, from its own ARM token's claims (``appid``, ``oid``; read, not
    verified: the token came from the credential itself). Empty when the token is not a JWT."""
    token = credential.get_token(ARM_SCOPE).token
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return Caller()
    return caller_from_claims(claims)
