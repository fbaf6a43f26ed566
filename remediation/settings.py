"""App settings, read from the environment and validated once, with errors that name the bad key.

In Azure these are the function app's application settings (see infra/); locally they come from
``local.settings.json`` or from the local stand-in (``localazure``), which sets them for the demo
and the tests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from remediation.policy import Policy, PolicyError, load_policy

PUBLIC_CLOUD_ARM = "https://management.azure.com"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the key."""


@dataclass(frozen=True)
class Settings:
    # Where ARM is, and how we authenticate to it.
    arm_endpoint: str = PUBLIC_CLOUD_ARM
    arm_credential: str = "managed-identity"  # or "loopback": a fixed token for the local stand-in
    arm_ca_bundle: str = ""  # a CA file to trust, for the local stand-in's self-signed certificate
    managed_identity_client_id: str = ""
    arm_poll_interval_s: float = 2.0  # used only when ARM sends no Retry-After on a long-running op
    arm_retry_total: int = 6
    # Where the audit log lives: a connection string (Azurite) or an endpoint used with the identity.
    audit_connection_string: str = ""
    audit_table_endpoint: str = ""
    audit_table: str = "remediationaudit"
    # A global dry run: plan and record, never write to ARM.
    dry_run: bool = False
    # Restricted scopes, exemptions and mode options (see policy.py); from JSON in an app setting or a file.
    policy: Policy = field(default_factory=Policy)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def text(key: str, default: str) -> str:
            return env.get(key, default).strip() or default

        def number(key: str, default: float, low: float, high: float) -> float:
            raw = env.get(key, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise SettingsError(f"{key}={raw!r} is not a number") from None
            if not low <= value <= high:
                raise SettingsError(f"{key}={raw!r} is outside {low}..{high}")
            return value

        def flag(key: str) -> bool:
            raw = env.get(key, "").strip().lower()
            if raw in ("", "0", "false", "no"):
                return False
            if raw in ("1", "true", "yes"):
                return True
            raise SettingsError(f"{key}={raw!r} is not a boolean (true/false)")

        settings = cls(
            arm_endpoint=text("ARM_ENDPOINT", PUBLIC_CLOUD_ARM).rstrip("/"),
            arm_credential=text("ARM_CREDENTIAL", "managed-identity").lower(),
            arm_ca_bundle=text("ARM_CA_BUNDLE", ""),
            managed_identity_client_id=text("AZURE_CLIENT_ID", ""),
            arm_poll_interval_s=number("ARM_POLL_INTERVAL_SECONDS", 2.0, 0.0, 60.0),
            arm_retry_total=int(number("ARM_RETRY_TOTAL", 6, 0, 20)),
            audit_connection_string=text("AUDIT_STORAGE_CONNECTION_STRING", ""),
            audit_table_endpoint=text("AUDIT_TABLE_ENDPOINT", "").rstrip("/"),
            audit_table=text("AUDIT_TABLE", "remediationaudit"),
            dry_run=flag("REMEDIATION_DRY_RUN"),
            policy=_policy(env),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        endpoint = urlparse(self.arm_endpoint)
        if endpoint.scheme != "https" or not endpoint.hostname:
            raise SettingsError(f"ARM_ENDPOINT={self.arm_endpoint!r} must be an https:// URL")
        if self.arm_credential not in ("managed-identity", "loopback"):
            raise SettingsError(
                f"ARM_CREDENTIAL={self.arm_credential!r} must be 'managed-identity' or 'loopback'"
            )
        if self.arm_credential == "loopback" and endpoint.hostname not in ("127.0.0.1", "localhost", "::1"):
            # The fixed local token must never be sent anywhere but the local stand-in.
            raise SettingsError("ARM_CREDENTIAL='loopback' is only allowed with a loopback ARM_ENDPOINT")
        if self.arm_ca_bundle and not os.path.isfile(self.arm_ca_bundle):
            raise SettingsError(f"ARM_CA_BUNDLE={self.arm_ca_bundle!r} is not a file")
        if not self.audit_connection_string and not self.audit_table_endpoint:
            raise SettingsError("set AUDIT_TABLE_ENDPOINT (or AUDIT_STORAGE_CONNECTION_STRING for Azurite)")
        if self.audit_table_endpoint and urlparse(self.audit_table_endpoint).scheme not in ("https", "http"):
            raise SettingsError(f"AUDIT_TABLE_ENDPOINT={self.audit_table_endpoint!r} is not a URL")
        table = self.audit_table
        if not (3 <= len(table) <= 63 and table.isalnum() and table[0].isalpha()):
            raise SettingsError(f"AUDIT_TABLE={table!r}: 3-63 letters and digits, starting with a letter")


def _policy(env: Mapping[str, str]) -> Policy:
    inline = env.get("REMEDIATION_POLICY", "").strip()
    path = env.get("REMEDIATION_POLICY_FILE", "").strip()
    if inline and path:
        raise SettingsError("set REMEDIATION_POLICY or REMEDIATION_POLICY_FILE, not both")
    try:
        if path:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as error:
                raise SettingsError(
                    f"REMEDIATION_POLICY_FILE={path!r} cannot be read: {error.strerror}"
                ) from None
            return load_policy(text, source=f"REMEDIATION_POLICY_FILE {path}")
        return load_policy(inline, source="REMEDIATION_POLICY")
    except PolicyError as error:
        raise SettingsError(str(error)) from None
