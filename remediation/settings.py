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
# The name of the storage connection, as the queue trigger in function_app.py names it.
STORAGE_CONNECTION = "RemediationStorage"


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
    arm_read_timeout_s: float = 60.0  # an ARM answer that takes longer is retried (ARM answers in seconds)
    # The longest a request waits its turn in the paced budgets (pacing.py) before going anyway.
    arm_max_pacing_wait_s: float = 600.0
    # The storage account for the audit log and the re-check queue, in the Functions convention for
    # a connection named "RemediationStorage" (the queue trigger binds to the same setting): a
    # connection string (Azurite), or service URIs used with the managed identity.
    storage_connection_string: str = ""
    table_endpoint: str = ""
    queue_endpoint: str = ""
    blob_endpoint: str = ""
    storage_retry_total: int = 3
    audit_table: str = "remediationaudit"
    # Raw events as received, for replay, kept this many days.
    archive_container: str = "event-archive"
    archive_retention_days: int = 30
    # The audit ledger: every record appended to append blobs, in a container that infra puts under
    # a time-based immutability policy (``remediation audit verify`` compares it with the table).
    ledger_container: str = "audit-ledger"
    # The work queue (looks at sets, queued events; its trigger reconciles one set per message),
    # and the delays of the re-checks of sets whose instances are still being created.
    recheck_queue: str = "remediation-recheck"
    recheck_delays_s: tuple[float, ...] = (15.0, 60.0, 180.0)
    # A set still growing is looked at again this often, for at most this long (the re-checks at
    # recheck_delays_s stay the fallback should a look of the watch be lost).
    watch_interval_s: float = 3.0
    watch_max_s: float = 1800.0
    # A reconcile begins no write after this many seconds; a follow-up message does the rest. Well
    # inside host.json's functionTimeout (10 min), which must also hold the writes in flight.
    reconcile_budget_s: float = 240.0
    # One reconcile per set at a time across hosts: a blob lease per set in this container, held
    # this long and renewed while the reconcile runs (Azure allows 15-60 s).
    lock_container: str = "remediation-locks"
    set_lease_seconds: int = 60
    # An intent older than this with no outcome is taken as interrupted, and closed from ARM's state.
    interrupted_write_grace_s: float = 900.0
    # What `remediation doctor` checks the deployment against: this function app (its resource
    # id; infra sets it), the sweep's schedule (the timer reads SWEEP_SCHEDULE too) and the
    # container Event Grid dead-letters to (infra/main.bicep's deadLetterContainerName).
    # They are only doctor's: doctor reports a bad value rather than the app refusing to start.
    function_app_id: str = ""
    sweep_schedule: str = "0 */15 * * * *"
    dead_letter_container: str = "eventgrid-deadletter"
    event_topic_resource_group: str = ""  # where the system topics are ("": list the subscription)
    # How long a subscription not found under the monitored management groups waits before they are
    # read again for it (remediation/ancestry.py): a subscription that joins is monitored this soon.
    management_group_refresh_s: float = 60.0
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
            arm_read_timeout_s=number("ARM_READ_TIMEOUT_SECONDS", 60.0, 1.0, 600.0),
            arm_max_pacing_wait_s=number("ARM_MAX_PACING_WAIT_SECONDS", 600.0, 0.0, 3600.0),
            storage_connection_string=text(f"{STORAGE_CONNECTION}", ""),
            table_endpoint=text(f"{STORAGE_CONNECTION}__tableServiceUri", "").rstrip("/"),
            queue_endpoint=text(f"{STORAGE_CONNECTION}__queueServiceUri", "").rstrip("/"),
            blob_endpoint=text(f"{STORAGE_CONNECTION}__blobServiceUri", "").rstrip("/"),
            storage_retry_total=int(number("STORAGE_RETRY_TOTAL", 3, 0, 10)),
            archive_container=text("ARCHIVE_CONTAINER", "event-archive"),
            archive_retention_days=int(number("ARCHIVE_RETENTION_DAYS", 30, 1, 3650)),
            ledger_container=text("LEDGER_CONTAINER", "audit-ledger"),
            audit_table=text("AUDIT_TABLE", "remediationaudit"),
            recheck_queue=text("RECHECK_QUEUE", "remediation-recheck"),
            recheck_delays_s=_delays(env.get("RECHECK_DELAYS_SECONDS", "")),
            watch_interval_s=number("WATCH_INTERVAL_SECONDS", 3.0, 0.0, 60.0),  # 0: a test pumps
            watch_max_s=number("WATCH_MAX_SECONDS", 1800.0, 0.0, 86400.0),
            reconcile_budget_s=number("RECONCILE_BUDGET_SECONDS", 240.0, 0.0, 480.0),
            lock_container=text("LOCK_CONTAINER", "remediation-locks"),
            set_lease_seconds=int(number("SET_LEASE_SECONDS", 60, 15, 60)),
            interrupted_write_grace_s=number("INTERRUPTED_WRITE_GRACE_SECONDS", 900.0, 0.0, 86400.0),
            function_app_id=text("FUNCTION_APP_ID", ""),
            sweep_schedule=" ".join(text("SWEEP_SCHEDULE", "0 */15 * * * *").split()),
            dead_letter_container=text("DEAD_LETTER_CONTAINER", "eventgrid-deadletter"),
            event_topic_resource_group=text("EVENT_TOPIC_RESOURCE_GROUP", ""),
            management_group_refresh_s=number("MANAGEMENT_GROUP_REFRESH_SECONDS", 60.0, 0.0, 600.0),
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
        if not self.storage_connection_string:
            for key, value in (
                ("tableServiceUri", self.table_endpoint),
                ("queueServiceUri", self.queue_endpoint),
            ):
                if urlparse(value).scheme not in ("https", "http"):
                    raise SettingsError(
                        f"{STORAGE_CONNECTION}__{key}={value!r} is not a URL "
                        f"(or set {STORAGE_CONNECTION} to a connection string)"
                    )
        for key, name in (
            ("RECHECK_QUEUE", self.recheck_queue),
            ("ARCHIVE_CONTAINER", self.archive_container),
            ("LEDGER_CONTAINER", self.ledger_container),
        ):
            if not (
                3 <= len(name) <= 63 and all(c.isalnum() or c == "-" for c in name) and name == name.lower()
            ):
                raise SettingsError(f"{key}={name!r}: 3-63 lower-case letters, digits and hyphens")
        if len(self.recheck_queue) > 56:  # the host's poison queue is named <queue>-poison
            raise SettingsError(f"RECHECK_QUEUE={self.recheck_queue!r}: at most 56 characters")
        table = self.audit_table
        if not (3 <= len(table) <= 63 and table.isalnum() and table[0].isalpha()):
            raise SettingsError(f"AUDIT_TABLE={table!r}: 3-63 letters and digits, starting with a letter")


def _delays(raw: str) -> tuple[float, ...]:
    if not raw.strip():
        return (15.0, 60.0, 180.0)
    try:
        delays = tuple(float(part) for part in raw.split(","))
    except ValueError:
        raise SettingsError(f"RECHECK_DELAYS_SECONDS={raw!r}: expected seconds separated by commas") from None
    if len(delays) > 10 or any(not 0 <= delay <= 7 * 24 * 3600 for delay in delays):
        # Storage queues hide a message for at most 7 days.
        raise SettingsError(f"RECHECK_DELAYS_SECONDS={raw!r}: at most 10 delays, each 0 to 604800")
    return delays


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
