"""The whole local stand-in in one object: the ARM simulator and Azurite, plus the app settings
that point the remediator at them (exactly the settings it reads in Azure, with local values).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from localazure.azurite import PROJECT_ROOT, Azurite
from localazure.event_deployment import (
    APP_RESOURCE_GROUP,
    DeployedEvents,
    EventDeployment,
    function_app_id,
    storage_account_id,
)
from remediation.credentials import LoopbackCredential
from remediation.settings import Settings
from sim import ArmSimulator

# The subscription the local estates live in (the demo's and the tests'), the app's own.
ESTATE_SUBSCRIPTION = "6a2e1c9d-6f3b-4f57-9d3e-2b1f4c8e7a10"
# Who builds the local estates (holds Owner), as against the remediator (LoopbackCredential.APP_ID).
ESTATE_OWNER = "00000000-0000-0000-0000-0000000e57a7"
# The custom role infra/ deploys for the remediator: its actions are read from the same file.
ROLE_ACTIONS_FILE = PROJECT_ROOT / "infra" / "app" / "remediator-role-actions.json"
REMEDIATOR_ROLE = "VMSS public IP remediator (local)"
REMEDIATOR_JOIN_ROLE = "VMSS public IP remediator joins (local)"
REMEDIATOR_EVENT_READ_ROLE = "VMSS public IP remediator event reads (local)"


def estate_owner() -> LoopbackCredential:
    """The credential that builds estates in the local stand-in, as a subscription's owner would."""
    return LoopbackCredential(ESTATE_OWNER, "estate owner (local)")


class LocalAzure:
    def __init__(
        self, azurite_data: Path | None = None, persistent_storage: bool = False, **simulator_options: Any
    ) -> None:
        self.azurite = Azurite(azurite_data, persistent=persistent_storage)
        self.arm = ArmSimulator(**simulator_options)

    def authorize(
        self,
        subscription: str,
        *,
        resource_groups: tuple[str, ...] = (),
        network_resource_groups: tuple[str, ...] = (),
    ) -> str:
        """Who may do what in ``subscription``, as a deployment leaves it: the estate's owner holds
        Owner; the remediator exactly the custom role infra/ deploys, assigned at the subscription
        (the deployment's default), or with ``resource_groups`` at those groups alone
        (roleAssignmentScope=resourceGroups), the join role at ``network_resource_groups``
        (networkResourceGroups) and the event-reads role at the app's resource group (where
        ``deploy_events`` puts the system topic). Idempotent; survives ``arm.reset()``. Returns the
        remediator's (first) role assignment (a test may revoke it)."""
        subscription_scope = f"/subscriptions/{subscription}"
        actions = json.loads(ROLE_ACTIONS_FILE.read_text(encoding="utf-8"))["actions"]
        role = self.arm.define_role(REMEDIATOR_ROLE, actions, assignable_scopes=[subscription_scope])
        self.arm.grant(ESTATE_OWNER, "Owner", subscription_scope)
        if not resource_groups:
            return self.arm.grant(LoopbackCredential.APP_ID, role, subscription_scope)
        group_scopes = [f"{subscription_scope}/resourceGroups/{group}" for group in resource_groups]
        assignments = [self.arm.grant(LoopbackCredential.APP_ID, role, scope) for scope in group_scopes]
        # The same filter as infra/app/remediator-role.bicep (joinsOnly): the linked actions alone.
        joins = [action for action in actions if "/join" in action]
        join_role = self.arm.define_role(REMEDIATOR_JOIN_ROLE, joins, assignable_scopes=[subscription_scope])
        for group in network_resource_groups:
            self.arm.grant(
                LoopbackCredential.APP_ID, join_role, f"{subscription_scope}/resourceGroups/{group}"
            )
        # The same filter as remediator-role.bicep (eventReadsOnly): the system topic's reads alone,
        # which the role at the restricted groups does not reach.
        event_reads = [
            action for action in actions if action.lower().startswith("microsoft.eventgrid/systemtopics/")
        ]
        event_read_role = self.arm.define_role(
            REMEDIATOR_EVENT_READ_ROLE, event_reads, assignable_scopes=[subscription_scope]
        )
        self.arm.grant(
            LoopbackCredential.APP_ID,
            event_read_role,
            f"{subscription_scope}/resourceGroups/{APP_RESOURCE_GROUP}",
        )
        return assignments[0]

    @property
    def function_app_id(self) -> str:
        """The local function app's resource id (in the estate's subscription), as the app's
        FUNCTION_APP_ID setting and the event subscriptions name it."""
        return function_app_id(ESTATE_SUBSCRIPTION)

    def deploy_events(
        self,
        subscription: str,
        *,
        restricted_resource_groups: tuple[str, ...] = (),
        schema: str = "EventGridSchema",
    ) -> DeployedEvents:
        """Create ``subscription``'s system topic and its event subscriptions to the function over
        HTTPS as the estate's owner, exactly as infra/app/event-topic.bicep and event-subscription.bicep
        deploy them (localazure/event_deployment.py); ``restricted_resource_groups``: the groups of
        this subscription events must come from (empty: all), as many event subscriptions as their
        subject prefixes take within Event Grid's 25 filter values. Call ``authorize`` first."""
        deployment = EventDeployment(self.arm.endpoint, self.arm.ca_bundle, estate_owner())
        return deployment.deploy(
            subscription,
            function_app=self.function_app_id,
            storage_account=storage_account_id(ESTATE_SUBSCRIPTION),
            restricted_resource_groups=restricted_resource_groups,
            schema=schema,
        )

    def start(self) -> LocalAzure:
        self.azurite.start()
        try:
            self.arm.start()
        except BaseException:
            self.azurite.close()
            raise
        return self

    def stop(self) -> None:
        try:
            self.arm.stop()
        finally:
            self.azurite.close()

    def environment(
        self,
        audit_table: str = "remediationaudit",
        recheck_queue: str = "remediation-recheck",
        archive_container: str = "event-archive",
        lock_container: str = "remediation-locks",
        ledger_container: str = "audit-ledger",
    ) -> dict[str, str]:
        """App settings for the remediator, as local.settings.json or the Functions host would set them."""
        return {
            "ARM_ENDPOINT": self.arm.endpoint,
            "ARM_CREDENTIAL": "loopback",
            "ARM_CA_BUNDLE": str(self.arm.ca_bundle),
            "ARM_POLL_INTERVAL_SECONDS": "0.05",
            "RemediationStorage": self.azurite.connection_string,
            "AUDIT_TABLE": audit_table,
            "RECHECK_QUEUE": recheck_queue,
            "ARCHIVE_CONTAINER": archive_container,
            "LOCK_CONTAINER": lock_container,
            "LEDGER_CONTAINER": ledger_container,
            "FUNCTION_APP_ID": self.function_app_id,
        }

    def settings(
        self,
        audit_table: str = "remediationaudit",
        recheck_queue: str = "remediation-recheck",
        **overrides: Any,
    ) -> Settings:
        return replace(Settings.from_env(self.environment(audit_table, recheck_queue)), **overrides)

    def __enter__(self) -> LocalAzure:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
