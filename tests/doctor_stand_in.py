"""What `remediation doctor`'s tests against the local stand-in deploy before the ARM side: the
app's settings with storage names of its own, and the storage infra/app/storage.bicep makes (the
audit table, the ledger and dead-letter containers; the queues are made by their first message)."""

from __future__ import annotations

from azure.data.tables import TableServiceClient

from localazure.event_deployment import APP_RESOURCE_GROUP
from localazure.stack import LocalAzure
from remediation.audit import blob_service
from remediation.settings import Settings


def app_environment(local: LocalAzure, unique: str) -> dict[str, str]:
    """The app settings of a deployment whose storage names end in ``unique`` (no policy yet)."""
    environment = local.environment(
        audit_table=f"doctor{unique}",
        recheck_queue=f"doctor-{unique}",
        archive_container=f"doctor-{unique}-archive",
        lock_container=f"doctor-{unique}-locks",
        ledger_container=f"doctor-{unique}-ledger",
    )
    return environment | {
        "DEAD_LETTER_CONTAINER": f"doctor-{unique}-dead",
        "EVENT_TOPIC_RESOURCE_GROUP": APP_RESOURCE_GROUP,  # infra: the app's resource group
    }


def create_app_storage(settings: Settings) -> None:
    """The table and the containers, as infra/app/storage.bicep makes them."""
    service = blob_service(settings)
    for container in (settings.ledger_container, settings.dead_letter_container):
        service.create_container(container)
    TableServiceClient.from_connection_string(settings.storage_connection_string).create_table(
        settings.audit_table
    )
